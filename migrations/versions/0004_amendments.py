"""plan amendments: proposed changes to the plan and the ward leader's decisions

Revision ID: 0004_amendments
Revises: 0003_engine
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0004_amendments"
down_revision: str | None = "0003_engine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plan_amendment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("task_number", sa.Integer(), nullable=False),
        sa.Column("plan_task_id", sa.Integer(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("proposed_by_id", sa.Integer(), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(state = 'proposed' AND decided_by_id IS NULL AND decided_at IS NULL)"
            " OR (state <> 'proposed' AND decided_by_id IS NOT NULL AND decided_at IS NOT NULL)",
            name=op.f("ck_plan_amendment_decision"),
        ),
        sa.CheckConstraint(
            "kind IN ('add_task', 'change_task', 'cancel_task')",
            name=op.f("ck_plan_amendment_kind"),
        ),
        sa.CheckConstraint(
            "state IN ('proposed', 'approved', 'rejected')", name=op.f("ck_plan_amendment_state")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["app_user.id"],
            name=op.f("fk_plan_amendment_decided_by_id_app_user"),
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plan.id"], name=op.f("fk_plan_amendment_plan_id_plan")
        ),
        sa.ForeignKeyConstraint(
            ["plan_task_id"],
            ["plan_task.id"],
            name=op.f("fk_plan_amendment_plan_task_id_plan_task"),
        ),
        sa.ForeignKeyConstraint(
            ["proposed_by_id"],
            ["app_user.id"],
            name=op.f("fk_plan_amendment_proposed_by_id_app_user"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_amendment")),
    )
    with op.batch_alter_table("plan_amendment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_amendment_plan_id"), ["plan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_plan_amendment_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("plan_amendment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_amendment_state"))
        batch_op.drop_index(batch_op.f("ix_plan_amendment_plan_id"))

    op.drop_table("plan_amendment")
