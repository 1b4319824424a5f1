"""audit: drop the actor-unit, actor-user and date indexes of audit_entry

Every append wrote five secondary indexes; three of them served only the auditor's filters by
unit, user and date, which read one ward's log (a few thousand entries a year) and are
answered by its primary key range just as well. The object index (task histories) and the
action index (the evaluation's returns, reports, the auditor's action filter) stay.

Revision ID: 0008_audit_filter_indexes
Revises: 0007_reports
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op


revision: str = "0008_audit_filter_indexes"
down_revision: str | None = "0007_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_entry_created_at", table_name="audit_entry")
    op.drop_index("ix_audit_entry_user", table_name="audit_entry")
    op.drop_index("ix_audit_entry_unit", table_name="audit_entry")


def downgrade() -> None:
    op.create_index("ix_audit_entry_unit", "audit_entry", ["log_id", "actor_unit", "seq"])
    op.create_index("ix_audit_entry_user", "audit_entry", ["log_id", "actor_user", "seq"])
    op.create_index("ix_audit_entry_created_at", "audit_entry", ["log_id", "created_at"])
