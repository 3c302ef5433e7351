"""Group commit for completions in a web process: those that arrive while one transaction is being
committed go into the next one together.

Each completion costs four round trips to PostgreSQL (BEGIN, claim, write, COMMIT) whatever else
it does, and under load that fixed cost was the largest share of a job's CPU after Flask itself.
A queue and a committer per process (a greenlet under gunicorn's gevent worker, which patches
`threading` and `queue`) share it: the committer takes everything queued, runs it as one
transaction (`completion.complete_together`), hands each request its answer or error, and takes
what queued meanwhile. Nothing waits for a batch to fill: an idle committer starts at once, so a
lone completion costs one hand-over between greenlets and nothing else. One transaction in flight
per process means that a completion waiting for a locked instance holds up the process's others;
the engine's own transactions hold an instance's lock for milliseconds, but a stuck one (an open
`psql` session, a transaction left idle) would hold them for as long as it lives. So on PostgreSQL the
committer's connection waits at most `COMPLETION_LOCK_TIMEOUT_MS` for a row lock: past it the group
is retried one completion at a time, the others go through, and the one whose row is held answers
503 `INSTANCE_BUSY` (its job is untouched, still the worker's, and can be completed again).

The committer holds one pooled connection for its life and runs its groups on it, outside the ORM
session (`tx.write_on`): a session transaction on a connection checked out of the pool and back
cost the web process about 160 µs more per transaction (`bench/transaction_cost.py`), more than
the round trips themselves. A connection found lost after a group is let go, and what failed is
tried once more on a fresh one.

Only gunicorn's web workers turn this on (`gunicorn.conf.py`), as for the Redis publisher. Everywhere
else (tests through the test client, CLI commands, RQ work horses) a completion runs at once in the
caller's own transaction, through the same `complete_together`, as a group of one.

Written here rather than taken from a library: this is the engine's own transaction boundary.
"""
import logging
import queue as queues
import threading

from flask import current_app
from psycopg.errors import LockNotAvailable

from app.engine.errors import InstanceBusy
from app.process_threads import ProcessThreads, take_queued

log = logging.getLogger("conveyor.engine.completion_queue")

MAX_GROUP = 64  # bounds one statement's size and one transaction's locks
# One: its groups are twice the size of two committers' groups, and since committers hold their
# connection that saves more CPU per job than the second committer's overlap won (docs/PERFORMANCE.md,
# sixth session; earlier sessions, with pooled connections, had kept two).
COMMITTERS = 1


class _Pending:
    __slots__ = ("app", "request", "done", "outcome")

    def __init__(self, app, request):
        self.app, self.request, self.done, self.outcome = app, request, threading.Event(), None


class CompletionQueue:
    def __init__(self):
        self.background = False
        self.pending: queues.SimpleQueue = queues.SimpleQueue()
        self.committers = ProcessThreads(self._run, "completion-committer", COMMITTERS)
        self.held = threading.local()  # each committer's connection, and the app it belongs to
        self.counted = threading.Lock()
        self.groups = 0       # transactions committed by this process's committers...
        self.completions = 0  # ...and the completions they carried (the mean group size is the ratio)

    def run_in_background(self) -> None:
        """From now on this process's completions go through its committers (the web worker's choice)."""
        self.background = True

    def submit(self, request):
        """Complete `request` (a completion.Completion): returns the answer or raises its error."""
        from app.engine.completion import complete_together

        if self.background:
            outcome = self._through_committer(request)
        else:
            outcome = complete_together([request])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _through_committer(self, request):
        self.committers.ensure_started()
        pending = _Pending(current_app._get_current_object(), request)
        self.pending.put(pending)
        pending.done.wait()
        return pending.outcome

    def _run(self) -> None:
        while True:
            self._commit(take_queued(self.pending, [self.pending.get()], MAX_GROUP))

    def _commit(self, group: list[_Pending]) -> None:
        by_app: dict = {}
        for pending in group:  # one app per process; several only in tests
            by_app.setdefault(id(pending.app), []).append(pending)
        for same_app in by_app.values():
            try:
                with same_app[0].app.app_context():
                    outcomes = self._complete([p.request for p in same_app], same_app[0].app)
            except Exception as exc:  # the committer itself must outlive any error: the requests get it
                log.exception("committing %d completion(s) failed", len(same_app))
                outcomes = [exc] * len(same_app)
            with self.counted:
                self.groups += 1
                self.completions += len(same_app)
            for pending, outcome in zip(same_app, outcomes):
                pending.outcome = outcome
                pending.done.set()

    def _complete(self, requests: list, app) -> list:
        """Complete on this committer's connection; if it turns out lost (PostgreSQL restarted, an idle
        timeout, a terminated backend), what failed is tried once more on a fresh one."""
        from app.engine.completion import complete_together

        outcomes = complete_together(requests, self._connection(app))
        if self._let_go_if_lost():
            failed = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, Exception)]
            log.warning("a committer's database connection was lost; %d completion(s) tried again", len(failed))
            again = complete_together([requests[i] for i in failed], self._connection(app))
            self._let_go_if_lost()
            for i, outcome in zip(failed, again):
                outcomes[i] = outcome
        return [_busy(request, outcome) for request, outcome in zip(requests, outcomes)]

    def _connection(self, app):
        """This committer's connection to `app`'s database (one app per process; several only in tests)."""
        from app.extensions import db

        conn = getattr(self.held, "conn", None)
        if conn is not None and self.held.app is not app:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("RESET lock_timeout")  # back to the pool as it came
                conn.commit()
            conn.close()
            conn = None
        if conn is None:
            conn = self.held.conn = db.engine.connect()
            self.held.app = app
            if conn.dialect.name == "postgresql":  # for this connection's life, so no round trip per group
                conn.exec_driver_sql(f"SET lock_timeout = {int(app.config['COMPLETION_LOCK_TIMEOUT_MS'])}")
                conn.commit()
        return conn

    def _let_go_if_lost(self) -> bool:
        """Drop the held connection if it is lost; True if it was. The engine's statements run on the
        driver's cursor (driver.py), past SQLAlchemy's own detection: ask the driver's connection."""
        conn = self.held.conn
        raw = None if conn.invalidated else conn.connection.dbapi_connection
        if raw is not None and not raw.closed and not raw.broken:
            return False
        self.held.conn = None
        conn.invalidate()
        conn.close()
        return True


def _busy(request, outcome):
    """A completion that waited out the lock timeout (PostgreSQL's error, from the driver or through
    SQLAlchemy) is the worker's to retry."""
    if isinstance(getattr(outcome, "orig", outcome), LockNotAvailable):
        return InstanceBusy(request.key)
    return outcome


queue = CompletionQueue()
