"""evaluation: KPI measurements, self-inspections, inspection draws, inspections, corrective actions, year closure

Revision ID: 0006_evaluation
Revises: 0005_api_tokens
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006_evaluation'
down_revision: str | None = '0005_api_tokens'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('inspection_draw',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('audit_seq', sa.BigInteger(), nullable=False),
    sa.Column('seed', sa.Text(), nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('selected', sa.JSON(), nullable=False),
    sa.Column('drawn_by_id', sa.Integer(), nullable=True),
    sa.Column('drawn_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['drawn_by_id'], ['app_user.id'], name=op.f('fk_inspection_draw_drawn_by_id_app_user')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_inspection_draw_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_draw'))
    )
    with op.batch_alter_table('inspection_draw', schema=None) as batch_op:
        batch_op.create_index('ix_inspection_draw_org_year', ['organization_id', 'year'], unique=False)

    op.create_table('kpi_measurement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('kpi_code', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=32), nullable=False),
    sa.Column('measured_on', sa.Date(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('evidence_sha256', sa.String(length=64), nullable=False),
    sa.Column('evidence_size', sa.BigInteger(), nullable=False),
    sa.Column('evidence_media_type', sa.String(length=128), nullable=False),
    sa.Column('evidence_filename', sa.String(length=255), nullable=False),
    sa.Column('entered_by_id', sa.Integer(), nullable=False),
    sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entered_by_id'], ['app_user.id'], name=op.f('fk_kpi_measurement_entered_by_id_app_user')),
    sa.ForeignKeyConstraint(['plan_id'], ['plan.id'], name=op.f('fk_kpi_measurement_plan_id_plan')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kpi_measurement'))
    )
    with op.batch_alter_table('kpi_measurement', schema=None) as batch_op:
        batch_op.create_index('ix_kpi_measurement_plan_code', ['plan_id', 'kpi_code', 'measured_on'], unique=False)

    op.create_table('self_inspection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('prefill', sa.JSON(), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('submitted_by_id', sa.Integer(), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('return_reason', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('draft', 'submitted', 'acknowledged', 'returned')", name=op.f('ck_self_inspection_state')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['app_user.id'], name=op.f('fk_self_inspection_decided_by_id_app_user')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_self_inspection_organization_id_organization')),
    sa.ForeignKeyConstraint(['submitted_by_id'], ['app_user.id'], name=op.f('fk_self_inspection_submitted_by_id_app_user')),
    sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_self_inspection_unit_id_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_self_inspection')),
    sa.UniqueConstraint('unit_id', 'year', name=op.f('uq_self_inspection_unit_id_year'))
    )
    with op.batch_alter_table('self_inspection', schema=None) as batch_op:
        batch_op.create_index('ix_self_inspection_org_year', ['organization_id', 'year'], unique=False)

    op.create_table('year_closure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('closed_by_id', sa.Integer(), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('coverage', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['closed_by_id'], ['app_user.id'], name=op.f('fk_year_closure_closed_by_id_app_user')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_year_closure_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_year_closure')),
    sa.UniqueConstraint('organization_id', 'year', name=op.f('uq_year_closure_organization_id_year'))
    )
    op.create_table('inspection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('draw_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('plan_text', sa.Text(), nullable=False),
    sa.Column('team', sa.JSON(), nullable=False),
    sa.Column('scheduled_on', sa.Date(), nullable=True),
    sa.Column('findings', sa.Text(), nullable=False),
    sa.Column('conclusion_number', sa.String(length=64), nullable=True),
    sa.Column('conclusion_text', sa.Text(), nullable=True),
    sa.Column('concluded_by_id', sa.Integer(), nullable=True),
    sa.Column('concluded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('planned', 'findings_recorded', 'concluded', 'closed')", name=op.f('ck_inspection_state')),
    sa.ForeignKeyConstraint(['concluded_by_id'], ['app_user.id'], name=op.f('fk_inspection_concluded_by_id_app_user')),
    sa.ForeignKeyConstraint(['draw_id'], ['inspection_draw.id'], name=op.f('fk_inspection_draw_id_inspection_draw')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_inspection_organization_id_organization')),
    sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_inspection_unit_id_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection')),
    sa.UniqueConstraint('unit_id', 'year', name=op.f('uq_inspection_unit_id_year'))
    )
    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inspection_organization_id'), ['organization_id'], unique=False)

    op.create_table('corrective_action',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inspection_id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['inspection_id'], ['inspection.id'], name=op.f('fk_corrective_action_inspection_id_inspection')),
    sa.ForeignKeyConstraint(['instance_id'], ['task_instance.id'], name=op.f('fk_corrective_action_instance_id_task_instance')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_corrective_action')),
    sa.UniqueConstraint('instance_id', name=op.f('uq_corrective_action_instance_id'))
    )
    with op.batch_alter_table('corrective_action', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_corrective_action_inspection_id'), ['inspection_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('corrective_action', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_corrective_action_inspection_id'))

    op.drop_table('corrective_action')
    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inspection_organization_id'))

    op.drop_table('inspection')
    op.drop_table('year_closure')
    with op.batch_alter_table('self_inspection', schema=None) as batch_op:
        batch_op.drop_index('ix_self_inspection_org_year')

    op.drop_table('self_inspection')
    with op.batch_alter_table('kpi_measurement', schema=None) as batch_op:
        batch_op.drop_index('ix_kpi_measurement_plan_code')

    op.drop_table('kpi_measurement')
    with op.batch_alter_table('inspection_draw', schema=None) as batch_op:
        batch_op.drop_index('ix_inspection_draw_org_year')

    op.drop_table('inspection_draw')
