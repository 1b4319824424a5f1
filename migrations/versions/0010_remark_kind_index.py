"""remark: index (instance_id, kind) instead of instance_id alone

Every transition reads an instance's written explanations (giải trình) by instance and kind.
With the instance-only index the lookup visited every remark of the instance, so a task with a
long history of comments, findings and returns made each of its transitions slower; the
composite index answers it directly and serves the instance-only lookups as well.

Revision ID: 0010_remark_kind_index
Revises: 0009_delivery
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op


revision: str = "0010_remark_kind_index"
down_revision: str | None = "0009_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_remark_instance_kind", "remark", ["instance_id", "kind"])
    op.drop_index("ix_remark_instance_id", table_name="remark")


def downgrade() -> None:
    op.create_index("ix_remark_instance_id", "remark", ["instance_id"])
    op.drop_index("ix_remark_instance_kind", table_name="remark")
