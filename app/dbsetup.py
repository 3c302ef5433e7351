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
# In WAL mode a deferred transaction that reads, then writes after another process committed, fails at
# once with "database is locked" whatever the busy timeout. So web requests that may write (an unsafe
# method) take the lock at BEGIN (`register`); worker code that reads then writes uses `immediate()`.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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


def register(app) -> None:
    from flask import g, request

    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return  # only SQLite needs its write lock taken at BEGIN; elsewhere the hooks would be pure cost

    @app.before_request
    def lock_up_front_for_writes():
        if request.method in UNSAFE_METHODS:
            from app.extensions import db
            # A read left open on the session (a test's, sharing the app context) would make this request
            # continue a deferred transaction: end it so the request's own begins with the lock.
            end_read(db.session)
            g.sqlite_begin_token = _begin_mode.set("IMMEDIATE")

    @app.teardown_request
    def restore_begin_mode(exc):
        token = g.pop("sqlite_begin_token", None)
        if token is not None:
            from app.extensions import db
            # A read after the service's commit (serialising the answer) begins IMMEDIATE too: end it now,
            # even where the session outlives the request (the test client shares one app context).
            db.session.rollback()
            try:
                _begin_mode.reset(token)
            except ValueError:  # torn down in another context: no request-level mode may leak
                _begin_mode.set("")


def dialect() -> str:
    """The app's database dialect ("postgresql", "sqlite"), looked up once per app: the hot paths ask
    several times a request, and asking the session resolves its bind each time."""
    from flask import current_app

    name = current_app.extensions.get("conveyor_dialect")
    if name is None:
        from app.extensions import db
        name = current_app.extensions["conveyor_dialect"] = db.engine.dialect.name
    return name


def end_read(session) -> None:
    """On SQLite, end the transaction a lookup opened, so no lock outlives it into the request's other I/O."""
    if dialect() == "sqlite" and session().in_transaction():
        session.commit()


@contextmanager
def reading():
    """Transactions begun inside this block are plain (deferred), even in a write request: for reads that
    poll, which must not hold the write lock the process they wait for needs."""
    token = _begin_mode.set("")
    try:
        yield
    finally:
        _begin_mode.reset(token)


@contextmanager
def write(session):
    """One read-then-write transaction, committed at the end of the block and rolled back on any error.

    On SQLite it ends the read the session may have open and takes the write lock at BEGIN (a deferred
    transaction that reads, then writes after another process committed, fails at once). On PostgreSQL
    it continues the open transaction: read committed makes that free, and it saves a BEGIN/COMMIT pair."""
    if dialect() != "postgresql":
        session.commit()
    try:
        with immediate():
            yield session
            session.commit()
    except BaseException:
        session.rollback()
        raise


@contextmanager
def immediate():
    """The next transaction begun inside this block takes SQLite's write lock at BEGIN (no-op elsewhere).

    Start it with no transaction open on the session (commit or roll back first)."""
    token = _begin_mode.set("IMMEDIATE")
    try:
        yield
    finally:
        _begin_mode.reset(token)
