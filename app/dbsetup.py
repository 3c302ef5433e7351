"""SQLite made fit for several processes; write transactions that take their lock up front.

SQLAlchemy's pysqlite driver defers BEGIN and cannot say BEGIN IMMEDIATE; its documented recipe is
to turn the driver's transaction handling off and emit BEGIN ourselves, which is what this does.
"""
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

_begin_mode: ContextVar[str] = ContextVar("sqlite_begin_mode", default="")
# In WAL mode a deferred transaction that reads, then writes after another process committed, fails at
# once with "database is locked" whatever the busy timeout. So web requests that may write (an unsafe
# method) take the lock at BEGIN (`register`); worker code that reads then writes uses `immediate()`.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BUSY_TIMEOUT_S = 30


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection, connection_record):
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")      # readers do not block the writer
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")  # writers queue instead of failing at once
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@event.listens_for(Engine, "begin")
def _begin_sqlite(conn):
    if conn.dialect.name != "sqlite":
        return
    mode = _begin_mode.get()
    writer = _green_writers.get(conn.engine) if mode and _green_writers else None
    if writer is not None:
        writer.begin(conn, f"BEGIN {mode}")
    else:
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


class GreenWriter:
    """Under gevent, the greenlets of one process wait for SQLite's write lock in turn, on the hub.

    SQLite waits out a busy lock inside C (busy_timeout), and that wait does not yield to gevent: a
    greenlet waiting there stops its whole process, the greenlet that holds the lock and is sending to
    Redis among them. Nothing moves until the wait gives up with "database is locked" after
    BUSY_TIMEOUT_S — seen as web workers frozen for 30-60 s by a few concurrent submissions. So a
    greenlet takes this lock before it writes and keeps it until its transaction ends. A writer in
    another process (an RQ job's transaction) would still freeze this one for as long as it writes:
    so BEGIN IMMEDIATE is tried without SQLite's wait, and retried after sleeping on the hub. (The
    first write of a deferred transaction still waits in C; web requests that write begin IMMEDIATE.)
    One per engine."""

    KEY = "conveyor_green_writer"

    def __init__(self):
        self.lock = threading.Lock()  # a greenlet lock: gevent has patched threading

    def take(self, conn, statement: str, timeout: float = BUSY_TIMEOUT_S) -> None:
        if conn.info.get(self.KEY):
            return
        if not self.lock.acquire(timeout=max(0.0, timeout)):
            raise exc.OperationalError(statement, None, sqlite3.OperationalError("database is locked"))
        conn.info[self.KEY] = True

    def begin(self, conn, statement: str) -> None:
        """This process's turn, then the database's write lock, both waited for on the hub."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        self.take(conn, statement, deadline - time.monotonic())
        try:
            _lock_database(conn.connection.dbapi_connection, statement, deadline)
        except BaseException:
            self.give(conn)
            raise

    def give(self, conn_or_record) -> None:
        if conn_or_record is not None and conn_or_record.info.pop(self.KEY, False):
            self.lock.release()

    def before_execute(self, conn, cursor, statement, parameters, context, executemany):
        # A deferred (read) transaction that writes: its first write waits for the lock too.
        if statement.lstrip()[:7].upper().startswith(_WRITES):
            self.take(conn, statement)

    def listen(self, engine) -> None:
        event.listen(engine, "before_cursor_execute", self.before_execute)
        # Given back just before COMMIT runs; gevent wakes the next writer from its loop, once this
        # greenlet yields, which is after COMMIT.
        event.listen(engine, "commit", self.give)
        event.listen(engine, "rollback", self.give)
        # A connection returned or dropped mid-transaction (a killed greenlet) must not keep the lock.
        event.listen(engine.pool, "checkin", lambda dbapi_conn, record: self.give(record))
        event.listen(engine.pool, "invalidate", lambda dbapi_conn, record, error: self.give(record))


def _lock_database(raw: sqlite3.Connection, statement: str, deadline: float) -> None:
    from gevent import sleep

    pause = 0.001
    raw.execute("PRAGMA busy_timeout=0")  # SQLITE_BUSY at once rather than a wait in C
    try:
        while True:
            try:
                raw.execute(statement)
                return
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise exc.OperationalError(statement, None, error) from error
            sleep(pause)
            pause = min(pause * 2, 0.05)
    finally:
        raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
_green_writers: "weakref.WeakKeyDictionary[Engine, GreenWriter]" = weakref.WeakKeyDictionary()


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


def writers_take_turns(app) -> None:
    """In a gevent-patched process on SQLite, writers wait on the hub (GreenWriter); call after the
    database extension is set up."""
    from app.extensions import db
    from app.green_wait import gevent_patched

    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") or not gevent_patched("threading"):
        return
    with app.app_context():
        engine = db.engine
    if engine not in _green_writers:
        _green_writers[engine] = writer = GreenWriter()
        writer.listen(engine)


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
