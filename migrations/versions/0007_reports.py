"""reports: alerts already sent about periodic report deadlines

Revision ID: 0007_reports
Revises: 0006_evaluation
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007_reports'
down_revision: str | None = '0006_evaluation'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('report_alert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('report_key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('due_soon', 'overdue')", name=op.f('ck_report_alert_kind')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_report_alert_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_alert')),
    sa.UniqueConstraint('organization_id', 'report_key', 'kind', 'due_date', name=op.f('uq_report_alert_organization_id_report_key_kind_due_date'))
    )


def downgrade() -> None:
    op.drop_table('report_alert')
