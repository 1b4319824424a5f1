"""task_instance: no index on state

Every lifecycle transition changes an instance's state, so the index on state cost every
transition a deletion and an insertion in a second B-tree (on SQLite two more pages in the
WAL at each commit, about a twentieth of a transition's time). No query depends on it: every query
that filters on state is scoped to one ward and reaches that ward's instances through its
units or its plan's tasks (ix_task_instance_unit_due, ix_task_instance_plan_task_id), a few
dozen a unit a year, so the state is checked on rows already read. Measured on 30 wards'
instances (20,880 rows, 29/11): the review queue and the lists by state took the same time
without it on SQLite; on PostgreSQL the planner chose to scan the table for the work list by
state, 4.3 ms against 3.0 with the index (0.7 ms through the unit index, sequential scans
off).

Revision ID: 0015_no_state_index
Revises: 0014_audit_append_inline
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op


revision: str = "0015_no_state_index"
down_revision: str | None = "0014_audit_append_inline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_task_instance_state", table_name="task_instance")


def downgrade() -> None:
    op.create_index("ix_task_instance_state", "task_instance", ["state"])
