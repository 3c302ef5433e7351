"""A process that forks waits, before each fork, until none of its threads is using the database.

The RQ worker forks a work horse for every job while its own threads (the engine's timeout sweeper,
the project-job reconciler, the webhook sweeper) query the database. SQLite keeps its file locks in
process-wide state that a fork copies. A horse forked while a sweeper held the write lock (every
sweep begins IMMEDIATE) inherits that lock as held by a connection the horse does not have, so each
of its writes waits out the busy timeout and fails with "database is locked" - seen as a job stuck
for 30 s, then failed. A fork in the middle of any SQLite call can also copy a mutex that is held,
and the horse's first call then waits on it forever. So those threads do each pass inside
`worker_pass()` (the gate, in an app context), and `install()` makes every fork wait until no pass
is running. No pass starts while a fork is waiting, so a busy thread cannot hold a fork off for long.
"""
import logging
import os
import threading
from contextlib import contextmanager

log = logging.getLogger("conveyor.fork_gate")
WAIT_LIMIT_S = 30  # a pass stuck longer (a database outage) must not stop the worker from working


class ForkGate:
    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._busy = 0
        self._forking = False

    @contextmanager
    def working(self):
        """One pass (not nested: a pass inside a pass would wait for a fork that waits for it)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._forking)
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def before_fork(self) -> None:
        # The lock stays held through the fork, so no pass begins until after_fork_* lets go.
        self._cond.acquire()
        self._forking = True
        if not self._cond.wait_for(lambda: self._busy == 0, timeout=WAIT_LIMIT_S):
            log.warning({"event": "fork_gate_timeout", "busy": self._busy, "waited_s": WAIT_LIMIT_S})

    def after_fork_in_parent(self) -> None:
        self._forking = False
        self._cond.notify_all()
        self._cond.release()

    def after_fork_in_child(self) -> None:
        self.__init__()  # the threads that were waiting or working did not come along


gate = ForkGate()


@contextmanager
def worker_pass(app, log_to: logging.Logger, failure: str):
    """One pass of a worker thread's loop: inside the gate and an app context, its session removed
    after; an error (a database or Redis outage) is logged as `failure`, and the next pass tries again."""
    from app.extensions import db

    with gate.working(), app.app_context():
        try:
            yield
        except Exception:
            log_to.exception(failure)
        finally:
            db.session.remove()


def install() -> None:
    """Make every fork of this process wait for the gate (the RQ worker calls it once, at start)."""
    os.register_at_fork(before=gate.before_fork, after_in_parent=gate.after_fork_in_parent,
                        after_in_child=gate.after_fork_in_child)
