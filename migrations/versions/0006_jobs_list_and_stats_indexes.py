"""engine jobs: type and worker indexes for the list; the state index also orders by end time, for the stats

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("engine_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_engine_jobs_tenant_worker_created", ["tenant", "worker", "created_at", "key"],
                              unique=False, postgresql_where=sa.text("worker IS NOT NULL"),
                              sqlite_where=sa.text("worker IS NOT NULL"))
        batch_op.create_index("ix_engine_jobs_tenant_type_created", ["tenant", "type", "created_at", "key"],
                              unique=False)
        # Replaced rather than added: every index on engine_jobs costs each job update a write.
        batch_op.create_index("ix_engine_jobs_tenant_state_ended", ["tenant", "state", "ended_at"], unique=False)
        batch_op.drop_index("ix_engine_jobs_tenant_state")


def downgrade():
    with op.batch_alter_table("engine_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_engine_jobs_tenant_state", ["tenant", "state"], unique=False)
        batch_op.drop_index("ix_engine_jobs_tenant_state_ended")
        batch_op.drop_index("ix_engine_jobs_tenant_type_created")
        batch_op.drop_index("ix_engine_jobs_tenant_worker_created", postgresql_where=sa.text("worker IS NOT NULL"),
                            sqlite_where=sa.text("worker IS NOT NULL"))
