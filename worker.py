"""The RQ worker process: builds the app once, then works its queues with the scheduler.

`python worker.py` works every queue the service uses; `python worker.py webhooks` only the named ones
(the Procfile gives webhook delivery a process of its own).
"""
import ctypes
import logging
import os
import signal
import sys

from rq import Worker
from rq.serializers import JSONSerializer
from sqlalchemy.orm import configure_mappers

from app import create_app, fork_gate
from app.extensions import QUEUES, db, get_queue, get_redis

log = logging.getLogger("conveyor.worker")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int):
    """RQ puts its work horse in a process group of its own, so a worker killed with its group leaves
    the horse running a job the reconciler has already ended. On Linux the kernel kills the horse
    (and the scheduler process) when the worker dies."""
    def arrange():
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # not Linux: the runner's attempt checks stop it instead
            return
        if os.getppid() != parent:  # the worker died before the request took effect
            os._exit(1)
    return arrange


def ready_to_fork() -> None:
    """Prepare this process for forking work horses (and RQ's scheduler) while threads run in it.

    A child gets a copy of every lock as it stood at the fork, with none of the threads that held
    them. The worker's threads (the engine's timeout sweeper, the reconciler, the webhook sweeper)
    start querying at once, and the first query configures SQLAlchemy's mappers under a global
    mutex: a horse forked in that instant waited on it forever, holding the job's row lock (SQLite:
    the whole database's write lock, taken at BEGIN) — seen as jobs stuck for minutes. So the
    mappers are configured here, before any thread starts, and nothing is left to configure. The
    same holds for SQLite's own locks and mutexes, which those threads take on every pass: forks wait
    until no pass is running (app/fork_gate.py)."""
    configure_mappers()
    fork_gate.install()
    engine = db.engine
    # A forked work horse must not reuse the parent's connections (SQLAlchemy's pooling docs).
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    os.register_at_fork(after_in_child=_die_with_parent(os.getpid()))


def main(names: list[str]) -> None:
    unknown = [n for n in names if n not in QUEUES]
    if unknown:
        sys.exit(f"worker.py: unknown queue(s) {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    names = names or list(QUEUES)
    app = create_app()
    with app.app_context():
        ready_to_fork()
        connection = get_redis()
        queues = [get_queue(name, connection) for name in names]
        worker = Worker(queues, connection=connection, serializer=JSONSerializer,
                        name=os.environ.get("RQ_WORKER_NAME") or None)
        for hook in app.extensions.get("conveyor_worker_hooks", []):
            hook(app, worker)
        log.info({"event": "worker_start", "queues": names, "name": worker.name})
        worker.work(with_scheduler=True, logging_level=app.config["LOG_LEVEL"])


if __name__ == "__main__":
    main(sys.argv[1:])
