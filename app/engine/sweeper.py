"""Timed-out jobs released by a periodic task, so GET and /stats show the truth without any poll.

A job whose deadline passed is released: ACTIVATABLE again, `available_at` its deadline (its
backlog age counts from the timeout), no retry spent, history JOB_TIMED_OUT, event
`job.timed_out`, and waiting workers of its type are woken. The released row keeps its old
`worker` and `deadline`, which is how a late complete is told the job TIMED_OUT. Activation
also takes a timed-out job that no sweep has released yet (it writes JOB_TIMED_OUT itself), so
a stopped sweeper delays only what readers see, never the work.

Every RQ worker process runs the sweep in a daemon thread every second (app config
`JOB_TIMEOUT_SWEEP_SECONDS`); concurrent sweeps are safe (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN
IMMEDIATE` on SQLite).
"""
import logging
import threading
import time

from sqlalchemy import bindparam, select, text, update

from app import clock
from app.engine import tx
from app.engine.models import ACTIVATABLE, ACTIVATED, IN_FLIGHT_PREDICATE, Job, JobHistory
from app.extensions import db
from app.fork_gate import worker_pass

log = logging.getLogger("conveyor.engine.sweeper")
BATCH = 500
_J = Job.__table__
_NOW = bindparam("now", type_=_J.c.available_at.type)
# The state as literal text, so that PostgreSQL can match the partial index `ix_engine_jobs_in_flight_deadline`
# (a bound parameter would not prove its predicate) and read only the jobs past their deadline.
_DUE = select(_J.c.key).where(text(f"engine_jobs.{IN_FLIGHT_PREDICATE}"), _J.c.available_at <= _NOW).order_by(
    _J.c.available_at).limit(BATCH)
_RETURN = (_J.c.key, _J.c.type, _J.c.tenant, _J.c.instance_key, _J.c.worker, _J.c.deadline, _J.c.attempts)


def _release(keys_query):
    return (update(_J).where(_J.c.key.in_(keys_query), _J.c.state == ACTIVATED, _J.c.available_at <= _NOW)
            .values(state=ACTIVATABLE).returning(*_RETURN))


_RELEASE_PG = _release(_DUE.with_for_update(skip_locked=True).scalar_subquery())
_RELEASE_SQLITE = _release(_DUE.scalar_subquery())


def sweep_timeouts() -> int:
    """Release up to BATCH timed-out jobs in one transaction; returns how many."""
    with tx.write():
        conn = db.session.connection()
        now = clock.utcnow()
        rows = conn.execute(_RELEASE_PG if tx.is_postgres() else _RELEASE_SQLITE, {"now": now}).all()
        if not rows:
            return 0
        conn.execute(JobHistory.__table__.insert(), [
            {"job_key": r.key, "at": r.deadline, "action": "JOB_TIMED_OUT", "worker": r.worker,
             "attempt": r.attempts, "error": None, "backoff_ms": None,
             "details": {"details": "Job deadline passed before completion"}} for r in rows])
        woken: dict[tuple, int] = {}
        for r in rows:
            tx.job_event("job.timed_out", job_key=r.key, job_type=r.type, tenant=r.tenant,
                         instance_key=r.instance_key, worker=r.worker)
            woken[(r.tenant, r.type)] = woken.get((r.tenant, r.type), 0) + 1
        for (tenant, job_type), count in woken.items():
            tx.wake(tenant=tenant, job_type=job_type, count=count)
    return len(rows)


def _sweep_in_worker(app) -> int:
    """One batch, as one pass of the worker's thread (app/fork_gate.py); 0 if it failed."""
    swept = 0
    with worker_pass(app, log, "job timeout sweep failed"):
        swept = sweep_timeouts()
    return swept


def start(app, worker=None) -> threading.Thread:
    """Registered in app.extensions["conveyor_worker_hooks"]: worker.py calls it before working."""
    period = app.config["JOB_TIMEOUT_SWEEP_SECONDS"]

    def loop():
        while True:
            while _sweep_in_worker(app) == BATCH:
                pass
            time.sleep(period)

    thread = threading.Thread(target=loop, name="engine-timeout-sweeper", daemon=True)
    thread.start()
    return thread
