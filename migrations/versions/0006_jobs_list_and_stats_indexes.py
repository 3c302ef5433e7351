"""engine jobs: type and worker indexes for the list; the state index also orders by end time, for the stats

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

from app import online_indexes

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WORKER_NOT_NULL = sa.text("worker IS NOT NULL")


def upgrade():
    if online_indexes.on_postgresql(op):  # a live deployment's job table stays writable meanwhile
        created = ["ix_engine_jobs_tenant_worker_created", "ix_engine_jobs_tenant_type_created",
                   "ix_engine_jobs_tenant_state_ended"]
        with online_indexes.concurrently(op, created):
            op.create_index(created[0], "engine_jobs", ["tenant", "worker", "created_at", "key"],
                            postgresql_where=WORKER_NOT_NULL, postgresql_concurrently=True, if_not_exists=True)
            op.create_index(created[1], "engine_jobs", ["tenant", "type", "created_at", "key"],
                            postgresql_concurrently=True, if_not_exists=True)
            op.create_index(created[2], "engine_jobs", ["tenant", "state", "ended_at"],
                            postgresql_concurrently=True, if_not_exists=True)
            op.drop_index("ix_engine_jobs_tenant_state", table_name="engine_jobs", postgresql_concurrently=True,
                          if_exists=True)
        return
    with op.batch_alter_table("engine_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_engine_jobs_tenant_worker_created", ["tenant", "worker", "created_at", "key"],
                              unique=False, sqlite_where=WORKER_NOT_NULL)
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
        batch_op.drop_index("ix_engine_jobs_tenant_worker_created", postgresql_where=WORKER_NOT_NULL,
                            sqlite_where=WORKER_NOT_NULL)
