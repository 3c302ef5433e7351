"""SQLite made fit for several processes; write transactions that take their lock up front.

SQLAlchemy's pysqlite driver defers BEGIN and cannot say BEGIN IMMEDIATE; its documented recipe is
to turn the driver's transaction handling off and emit BEGIN ourselves, which is what this does.
"""
import sqlite3
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Engine

_begin_mode: ContextVar[str] = ContextVar("sqlite_begin_mode", default="")


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection, connection_record):
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")      # readers do not block the writer
    cursor.execute("PRAGMA busy_timeout=30000")    # writers queue instead of failing at once
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@event.listens_for(Engine, "begin")
def _begin_sqlite(conn):
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"BEGIN {_begin_mode.get()}".strip())


@contextmanager
def immediate():
    """The next transaction begun inside this block takes SQLite's write lock at BEGIN (no-op elsewhere).

    Start it with no transaction open on the session (commit or roll back first)."""
    token = _begin_mode.set("IMMEDIATE")
    try:
        yield
    finally:
        _begin_mode.reset(token)
