"""submission tracking, the plan's workflow policy and deadline alerts

Revision ID: 0003_engine
Revises: 0002_audit
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0003_engine"
down_revision: str | None = "0002_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deadline_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('due_soon', 'overdue')", name=op.f("ck_deadline_alert_kind")),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["task_instance.id"],
            name=op.f("fk_deadline_alert_instance_id_task_instance"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deadline_alert")),
        sa.UniqueConstraint(
            "instance_id",
            "kind",
            "due_date",
            name=op.f("uq_deadline_alert_instance_id_kind_due_date"),
        ),
    )
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("policy", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("task_instance", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("submission_round", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("submitted_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reviewed_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("recommendation", sa.String(length=16), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_task_instance_submitted_by_id_app_user"),
            "app_user",
            ["submitted_by_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_task_instance_reviewed_by_id_app_user"),
            "app_user",
            ["reviewed_by_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("task_instance", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_task_instance_reviewed_by_id_app_user"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_task_instance_submitted_by_id_app_user"), type_="foreignkey"
        )
        batch_op.drop_column("recommendation")
        batch_op.drop_column("reviewed_by_id")
        batch_op.drop_column("submitted_by_id")
        batch_op.drop_column("submission_round")

    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.drop_column("policy")
    op.drop_table("deadline_alert")
