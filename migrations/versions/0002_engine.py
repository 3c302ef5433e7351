"""engine: processes, instances, element instances, jobs, job history, incidents

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text  # noqa: F401  (JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

import app.types  # noqa: F401  (our column types)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('engine_element_instances',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('instance_key', sa.String(length=64), nullable=False),
    sa.Column('element_id', sa.String(length=255), nullable=False),
    sa.Column('element_type', sa.String(length=32), nullable=False),
    sa.Column('token_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('entered_at', app.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('left_at', app.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('engine_element_instances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engine_element_instances_instance_key'), ['instance_key'], unique=False)

    op.create_table('engine_job_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_key', sa.String(length=64), nullable=False),
    sa.Column('at', app.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('worker', sa.String(length=100), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('backoff_ms', sa.Integer(), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('engine_job_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engine_job_history_job_key'), ['job_key'], unique=False)

    op.create_table('engine_processes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant', sa.String(length=100), nullable=False),
    sa.Column('process_id', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('xml', sa.Text(), nullable=False),
    sa.Column('created_at', app.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant', 'process_id', 'checksum'),
    sa.UniqueConstraint('tenant', 'process_id', 'version')
    )
    op.create_table('engine_instances',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('tenant', sa.String(length=100), nullable=False),
    sa.Column('process_pk', sa.Integer(), nullable=False),
    sa.Column('process_id', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('variables', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('active_tokens', sa.Integer(), nullable=False),
    sa.Column('created_at', app.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', app.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['process_pk'], ['engine_processes.id'], ),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('engine_instances', schema=None) as batch_op:
        batch_op.create_index('ix_engine_instances_tenant_created', ['tenant', 'created_at'], unique=False)

    op.create_table('engine_incidents',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('tenant', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('instance_key', sa.String(length=64), nullable=False),
    sa.Column('element_id', sa.String(length=255), nullable=False),
    sa.Column('element_instance_key', sa.String(length=64), nullable=True),
    sa.Column('job_key', sa.String(length=64), nullable=True),
    sa.Column('job_type', sa.String(length=100), nullable=True),
    sa.Column('error_code', sa.String(length=255), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', app.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', app.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['instance_key'], ['engine_instances.key'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('engine_incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engine_incidents_instance_key'), ['instance_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_engine_incidents_job_key'), ['job_key'], unique=False)
        batch_op.create_index('ix_engine_incidents_tenant_state', ['tenant', 'state', 'created_at'], unique=False)

    op.create_table('engine_jobs',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('tenant', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('instance_key', sa.String(length=64), nullable=False),
    sa.Column('process_id', sa.String(length=255), nullable=False),
    sa.Column('process_version', sa.Integer(), nullable=False),
    sa.Column('process_pk', sa.Integer(), nullable=False),
    sa.Column('element_id', sa.String(length=255), nullable=False),
    sa.Column('element_instance_key', sa.String(length=64), nullable=False),
    sa.Column('token_id', sa.String(length=64), nullable=False),
    sa.Column('custom_headers', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('retries', sa.Integer(), nullable=False),
    sa.Column('original_retries', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('worker', sa.String(length=100), nullable=True),
    sa.Column('max_jobs_for_worker', sa.Integer(), nullable=True),
    sa.Column('timeout_ms', sa.Integer(), nullable=True),
    sa.Column('created_at', app.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('available_at', app.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('activated_at', app.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('deadline', app.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', app.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('retry_backoff_ms', sa.Integer(), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('error_code', sa.String(length=255), nullable=True),
    sa.Column('result_variables', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('completed_by', sa.String(length=100), nullable=True),
    sa.Column('incident_key', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['instance_key'], ['engine_instances.key'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('engine_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_engine_jobs_activation', ['tenant', 'type', 'available_at'], unique=False, postgresql_where=sa.text("state IN ('ACTIVATABLE', 'ACTIVATED')"), sqlite_where=sa.text("state IN ('ACTIVATABLE', 'ACTIVATED')"))
        batch_op.create_index(batch_op.f('ix_engine_jobs_instance_key'), ['instance_key'], unique=False)
        batch_op.create_index('ix_engine_jobs_tenant_created', ['tenant', 'created_at', 'key'], unique=False)
        batch_op.create_index('ix_engine_jobs_tenant_state', ['tenant', 'state'], unique=False)


def downgrade():
    with op.batch_alter_table('engine_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_engine_jobs_tenant_state')
        batch_op.drop_index('ix_engine_jobs_tenant_created')
        batch_op.drop_index(batch_op.f('ix_engine_jobs_instance_key'))
        batch_op.drop_index('ix_engine_jobs_activation', postgresql_where=sa.text("state IN ('ACTIVATABLE', 'ACTIVATED')"), sqlite_where=sa.text("state IN ('ACTIVATABLE', 'ACTIVATED')"))

    op.drop_table('engine_jobs')
    with op.batch_alter_table('engine_incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_engine_incidents_tenant_state')
        batch_op.drop_index(batch_op.f('ix_engine_incidents_job_key'))
        batch_op.drop_index(batch_op.f('ix_engine_incidents_instance_key'))

    op.drop_table('engine_incidents')
    with op.batch_alter_table('engine_instances', schema=None) as batch_op:
        batch_op.drop_index('ix_engine_instances_tenant_created')

    op.drop_table('engine_instances')
    op.drop_table('engine_processes')
    with op.batch_alter_table('engine_job_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_engine_job_history_job_key'))

    op.drop_table('engine_job_history')
    with op.batch_alter_table('engine_element_instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_engine_element_instances_instance_key'))

    op.drop_table('engine_element_instances')
