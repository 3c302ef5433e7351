"""Group commit for completions in a web process: those that arrive while one transaction is being
committed go into the next one together.

Each completion costs four round trips to PostgreSQL (BEGIN, claim, write, COMMIT) whatever else
it does, and under load that fixed cost was the largest share of a job's CPU after Flask itself.
A queue and two committers per process (greenlets under gunicorn's gevent worker, which patches
`threading` and `queue`) share it: a committer takes everything queued, runs it as one
transaction (`completion.complete_together`), hands each request its answer or error, and takes
what queued meanwhile. Nothing waits for a batch to fill: an idle committer starts at once, so a
lone completion costs one hand-over between greenlets and nothing else.

Only gunicorn's web workers turn this on (`gunicorn.conf.py`), as for the Redis publisher. Everywhere
else (tests through the test client, CLI commands, RQ work horses) a completion runs at once in the
caller's own transaction, through the same `complete_together`, as a group of one.

Written here rather than taken from a library: this is the engine's own transaction boundary.
"""
import logging
import queue as queues
import threading

from flask import current_app

from app.process_threads import ProcessThreads, take_queued

log = logging.getLogger("conveyor.engine.completion_queue")

MAX_GROUP = 64  # bounds one statement's size and one transaction's locks
# Two committers: while one group waits on PostgreSQL, the next can start; groups are smaller, but
# one committer left a core idle under the worker API bench (see docs/PERFORMANCE.md).
COMMITTERS = 2


class _Pending:
    __slots__ = ("app", "request", "done", "outcome")

    def __init__(self, app, request):
        self.app, self.request, self.done, self.outcome = app, request, threading.Event(), None


class CompletionQueue:
    def __init__(self):
        self.background = False
        self.pending: queues.SimpleQueue = queues.SimpleQueue()
        self.committers = ProcessThreads(self._run, "completion-committer", COMMITTERS)
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
        from app.engine.completion import complete_together

        by_app: dict = {}
        for pending in group:  # one app per process; several only in tests
            by_app.setdefault(id(pending.app), []).append(pending)
        for same_app in by_app.values():
            try:
                with same_app[0].app.app_context():
                    outcomes = complete_together([p.request for p in same_app])
            except Exception as exc:  # the committer itself must outlive any error: the requests get it
                log.exception("committing %d completion(s) failed", len(same_app))
                outcomes = [exc] * len(same_app)
            with self.counted:
                self.groups += 1
                self.completions += len(same_app)
            for pending, outcome in zip(same_app, outcomes):
                pending.outcome = outcome
                pending.done.set()


queue = CompletionQueue()
