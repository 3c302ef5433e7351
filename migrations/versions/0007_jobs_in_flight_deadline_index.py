"""engine jobs: jobs in flight by deadline, for the timeout sweep

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

from app import online_indexes

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

IN_FLIGHT = sa.text("state = 'ACTIVATED'")


def upgrade():
    if online_indexes.on_postgresql(op):  # a live deployment's job table stays writable meanwhile
        with online_indexes.concurrently(op, ["ix_engine_jobs_in_flight_deadline"]):
            op.create_index("ix_engine_jobs_in_flight_deadline", "engine_jobs", ["available_at"],
                            postgresql_where=IN_FLIGHT, postgresql_concurrently=True, if_not_exists=True)
        return
    with op.batch_alter_table("engine_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_engine_jobs_in_flight_deadline", ["available_at"], unique=False,
                              sqlite_where=IN_FLIGHT)


def downgrade():
    with op.batch_alter_table("engine_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_engine_jobs_in_flight_deadline", postgresql_where=IN_FLIGHT, sqlite_where=IN_FLIGHT)
