"""The engine's hottest PostgreSQL statements, run on the psycopg cursor of the session's connection.

SQLAlchemy's work around each execution (cache key, execution context, result wrapping) cost
about 55 µs a statement here, more than psycopg's whole round trip (~45 µs); a completion runs two
such statements and an activation one. So these statements are compiled once by SQLAlchemy for the
connection's dialect — the same Core statements, the same SQL — and run on the driver's cursor,
inside the session's transaction. Parameters go through the column types' own bind processors
(JSON is wrapped for psycopg, datetimes checked for a timezone); results need none on PostgreSQL
(psycopg loads JSONB and returns aware datetimes). Rows are named tuples.
"""
from contextlib import contextmanager

from psycopg.pq import TransactionStatus
from psycopg.rows import namedtuple_row


class Statement:
    def __init__(self, statement):
        self.statement = statement
        self.dialect = None

    def _compile(self, dialect) -> None:
        self.compiled = self.statement.compile(dialect=dialect)
        self.sql = self.compiled.string
        self.processors = {}
        for name, bind in self.compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor
        self.dialect = dialect

    def execute(self, conn, params: dict):
        """Run on `conn` (a SQLAlchemy Connection on PostgreSQL); returns the psycopg cursor."""
        if self.dialect is not conn.dialect:
            self._compile(conn.dialect)
        values = self.compiled.construct_params(params)  # adds the statement's own literal values
        for name, processor in self.processors.items():
            if name in values:
                values[name] = processor(values[name])
        cursor = conn.connection.driver_connection.cursor(row_factory=namedtuple_row)
        cursor.execute(self.sql, values)
        return cursor


@contextmanager
def on_its_own(conn):
    """A single statement is atomic by itself: outside a transaction, run it in autocommit, which saves
    the BEGIN and COMMIT round trips. Inside one (something was read first) it simply joins it."""
    raw = conn.connection.driver_connection
    if raw.info.transaction_status != TransactionStatus.IDLE:
        yield
        return
    raw.autocommit = True
    try:
        yield
    finally:
        raw.autocommit = False
