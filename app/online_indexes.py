"""Index changes on PostgreSQL that leave the table writable: CREATE and DROP INDEX CONCURRENTLY.

A plain CREATE INDEX takes a lock that blocks every write to its table until the build ends: on a
deployment's engine_jobs with millions of rows, workers could not activate or complete a job while
`flask db upgrade` ran. CONCURRENTLY may not run inside a transaction, so these changes run in
Alembic's autocommit block. A concurrent build that was interrupted leaves an INVALID index under
its name; such leftovers are dropped first, so that trying the upgrade again builds them.
"""
from contextlib import contextmanager

from sqlalchemy import text

_INVALID = text("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE NOT i.indisvalid AND c.relname = ANY(:names)")


def on_postgresql(op) -> bool:
    return op.get_context().dialect.name == "postgresql"


@contextmanager
def concurrently(op, names: list[str]):
    """Run the block's CONCURRENTLY index changes outside the migration's transaction."""
    with op.get_context().autocommit_block():
        if not op.get_context().as_sql:  # offline (`--sql`) there is no database to ask
            for (name,) in op.get_bind().execute(_INVALID, {"names": names}).all():
                op.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
        yield
