"""Bring project jobs in line with what RQ and the workers really did.

RQ leaves the job of a worker killed with `kill -9` "started" for about 90 s and cleans it up only
every ten minutes. Instead, every worker process runs a small thread that
- every PROJECT_JOBS_RECONCILE_SECONDS (default 20) refreshes a liveness key of its own, with a
  time-to-live of three periods (on a thread of its own, so a pass held up by a locked database
  cannot let the key lapse and have a live worker's job called dead), and
- when it wins a short Redis lock (one reconciler acts per period, whatever the number of workers),
  fails the Running jobs whose worker's liveness key has expired ("worker died"), settles those RQ
  already ended (a killed work horse, a stop), and re-enqueues Queued jobs that RQ lost — and
  those whose retry RQ still holds as scheduled long after it was due: RQ's scheduler is a process
  of its own, and a worker whose scheduler died starts another only at its next maintenance, ten
  minutes on. The scheduled copy, should it still run, is refused by the runner (another attempt).
So a dead worker's job is Failed within about four periods (80 s by default).
"""
import logging
import threading
from datetime import timedelta

import redis as redis_lib
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.fork_gate import worker_pass
from app.projects import jobs
from app.projects.models import Job

log = logging.getLogger("conveyor.projects.reconcile")
ALIVE_KEY = "conveyor:projects:worker-alive:{}"
LOCK_KEY = "conveyor:projects:reconcile-lock"
WORKER_DIED = "The worker running this job died (its process stopped without finishing the job)"
# What RQ says of the job of a row Queued since well before the cutoff when it will not run it: nothing
# (lost), or scheduled long past its time (no scheduler is moving it).
_NOT_COMING = (None, JobStatus.SCHEDULED)


def period_of(app) -> float:
    return max(float(app.config.get("PROJECT_JOBS_RECONCILE_SECONDS", 20)), 0.2)


def worker_hook(app, worker) -> threading.Event:
    """Registered in app.extensions["conveyor_worker_hooks"]; worker.py calls it before working.
    Setting the returned event stops both threads (the worker process never does: they die with it)."""
    period = period_of(app)
    connection = redis_lib.Redis.from_url(app.config["REDIS_URL"])
    mark_alive(connection, worker.name, period)  # before the first job can start
    stop = threading.Event()
    threading.Thread(target=_heartbeat, args=(connection, worker.name, period, stop),
                     name="conveyor-liveness", daemon=True).start()
    threading.Thread(target=_loop, args=(app, connection, worker.name, period, stop),
                     name="conveyor-reconciler", daemon=True).start()
    return stop


def mark_alive(connection, worker_name: str, period: float) -> None:
    connection.set(ALIVE_KEY.format(worker_name), "1", px=int(max(3 * period, 2) * 1000))


def _heartbeat(connection, worker_name: str, period: float, stop: threading.Event) -> None:
    while not stop.wait(period):  # worker_hook marked it alive just now
        try:
            mark_alive(connection, worker_name, period)
        except redis_lib.RedisError:  # Redis away: try again next period
            log.exception("could not refresh the worker's liveness key")


def _loop(app, connection, worker_name: str, period: float, stop: threading.Event) -> None:
    # First pass one period after start: a dead worker's key takes three periods to lapse anyway,
    # and a worker that comes up judges nothing before its peers have refreshed their keys.
    while not stop.wait(period):
        with worker_pass(app, log, "project job reconciliation failed"):
            if connection.set(LOCK_KEY, worker_name, nx=True, px=int(period * 1000 * 0.9)):
                reconcile_once(connection, grace=period)


def reconcile_once(connection, *, grace: float) -> dict:
    """One pass; returns what it changed (for tests and logs)."""
    changed = {"failed": [], "cancelled": [], "requeued": []}
    running = db.session.execute(select(Job.id, Job.rq_job_id, Job.worker_name, Job.cancel_requested)
                                 .where(Job.status == "Running")).all()
    db.session.rollback()
    for job_id, rq_job_id, worker_name, cancel_requested in running:
        verdict = _running_verdict(connection, rq_job_id, worker_name)
        if verdict is None:
            continue
        status = "Cancelled" if cancel_requested or verdict == "stopped" else "Failed"
        if jobs.mark(job_id=job_id, status=status, error=None if status == "Cancelled" else WORKER_DIED,
                     attempt=rq_job_id):  # not a retry that began since we looked
            changed["failed" if status == "Failed" else "cancelled"].append(job_id)
    cutoff = clock.utcnow() - timedelta(seconds=max(grace * 3, 30))
    queued = db.session.execute(select(Job.id, Job.rq_job_id).where(
        Job.status == "Queued", Job.created_at < cutoff,
        (Job.retry_at.is_(None)) | (Job.retry_at < cutoff))).all()
    db.session.rollback()
    for job_id, rq_job_id in queued:
        if _rq_status(connection, rq_job_id) in _NOT_COMING and jobs.requeue(job_id=job_id):
            changed["requeued"].append(job_id)
    if any(changed.values()):
        log.warning({"event": "project_jobs_reconciled", **changed})
    return changed


def _rq_status(connection, rq_job_id):
    try:
        return RQJob.fetch(rq_job_id, connection=connection, serializer=JSONSerializer).get_status()
    except NoSuchJobError:
        return None


def _running_verdict(connection, rq_job_id, worker_name) -> str | None:
    """'dead' or 'stopped' when the job can no longer be running; None while it may be."""
    status = _rq_status(connection, rq_job_id) if rq_job_id else None
    if status == JobStatus.STOPPED:
        return "stopped"
    if status in (JobStatus.FAILED, JobStatus.FINISHED, JobStatus.CANCELED, None):
        # RQ ended it (a killed work horse) while our row still says Running
        return "dead"
    if worker_name and not connection.exists(ALIVE_KEY.format(worker_name)):
        return "dead"
    return None
