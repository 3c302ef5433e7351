"""Project jobs: start, read, cancel, retry, statistics, and the state changes the runner makes.

Every change commits together with its event (`job.created`, `job.started`, `job.progress`,
`job.completed`, `job.failed`, `job.cancelled`); RQ is told only after the commit, so a fast worker
never looks for a row that does not exist yet.
"""
from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from redis.exceptions import RedisError
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob
from rq.serializers import JSONSerializer
from sqlalchemy import func, select

from app import clock, dbsetup
from app.auth.models import User
from app.errors import AppError, Conflict, NotFound, ValidationError
from app.extensions import db, get_queue, get_redis
from app.notify import events
from app.projects import handlers  # noqa: F401  (the built-in job types register themselves)
from app.projects import registry, staging
from app.projects import service as projects
from app.projects.models import ACTIVE, STATUSES, Job, Project, ProjectFile

log = logging.getLogger("conveyor.projects.jobs")
TASK = "app.projects.runner.run_job"
STOPPED_CALLBACK = "app.projects.runner.on_stopped"


class JobNotFound(NotFound):
    code, message = "JOB_NOT_FOUND", "No such job"


class JobStateConflict(Conflict):
    code = "JOB_STATE_CONFLICT"


def to_spec_dict(job: Job) -> dict:
    project = db.session.get(Project, job.project_id) if job.project_id else None
    creator = db.session.get(User, job.created_by) if job.created_by is not None else None
    return {
        "id": job.id, "type": job.type, "projectId": job.project_id,
        "projectName": project.name if project else None,
        "status": job.status, "progress": job.progress, "result": job.result, "error": job.error,
        "createdAt": clock.iso(job.created_at), "startedAt": clock.iso(job.started_at),
        "completedAt": clock.iso(job.completed_at),
        "createdBy": str(job.created_by) if job.created_by is not None else None,
        "createdByName": creator.display_name if creator else None,
    }


def _record(type_: str, job: Job) -> None:
    db.session.flush()
    events.record(type_, to_spec_dict(job), user_id=job.created_by, subject=job.id)


# ---- starting -------------------------------------------------------------------------------------

def start_job(*, name: str, user: User, project: Project | None = None, params: dict | None = None,
              upload: tuple[str, str, bytes] | None = None) -> Job:
    """Validate, commit the job (and its upload) with its `job.created` event, then enqueue it on RQ."""
    handler = registry.get(name)
    if handler is None:
        raise ValidationError({"type": f"Unknown job type; registered: {', '.join(registry.names())}"})
    if handler.needs_project and project is None:
        raise ValidationError({"projectId": f"{name} jobs need a project"})
    if upload is not None:
        from flask import current_app
        cap = current_app.config["UPLOAD_MAX_BYTES"]
        if len(upload[2]) > cap:
            raise projects.TooLarge(details={"max_bytes": cap, "size": len(upload[2])})
    now = clock.utcnow()
    # Callers outside a write request (a CLI command, a handler starting a follow-up job) have read first:
    # on SQLite the write lock must be taken at BEGIN.
    with dbsetup.write(db.session):
        job = Job(id=str(uuid.uuid4()), type=name, project_id=project.id if project else None, status="Queued",
                  progress=0, params=dict(params or {}), attempts=0, created_at=now, created_by=user.id,
                  cancel_requested=False, rq_job_id=_new_rq_id())
        db.session.add(job)
        db.session.flush()
        if upload is not None:
            filename, content_type, data = upload
            db.session.add(ProjectFile(project_id=job.project_id, job_id=job.id, purpose="upload", name=filename,
                                       content_type=content_type or "application/octet-stream", size=len(data),
                                       content=data, created_at=now))
        _record("job.created", job)
    _enqueue_accepted(job)
    return job


def _new_rq_id() -> str:
    return "pj-" + uuid.uuid4().hex


def _enqueue_accepted(job: Job) -> None:
    """Enqueue a job whose Queued row is committed. Without Redis it stays accepted: an error answer
    would invite the client to submit it again, and the reconciler enqueues a Queued job that RQ does
    not hold once Redis is back (reconcile.py)."""
    try:
        _enqueue(job)
    except RedisError as exc:
        log.warning("job %s is accepted, but RQ cannot be reached (%s); it is enqueued once Redis is back",
                    job.id, exc)


def _enqueue(job: Job) -> None:
    handler = registry.get(job.type)
    from rq import Callback
    get_queue(handler.queue).enqueue(TASK, job.id, job_id=job.rq_job_id, on_stopped=Callback(STOPPED_CALLBACK),
                                     result_ttl=600, failure_ttl=7 * 24 * 3600,
                                     description=f"{job.type} {job.id}")


# ---- reading --------------------------------------------------------------------------------------

def get_or_404(*, job_id: str, user: User) -> Job:
    job = db.session.get(Job, str(job_id))
    if job is None or not projects.can_see_job(job=job, user=user):
        raise JobNotFound()
    return job


def list(*, user: User, status: str | None = None, project_id: str | None = None,  # noqa: A001
         limit: int = 1000) -> list[Job]:
    query = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit)
    if project_id is not None:
        projects.get_or_404(project_id=project_id, user=user)
        query = query.where(Job.project_id == project_id)
    elif (clause := projects.visible_jobs_clause(user)) is not None:
        query = query.where(clause)
    if status:
        query = query.where(Job.status == status)
    return db.session.scalars(query).all()


def stats(*, project_id: str, user: User) -> dict:
    project = projects.get_or_404(project_id=project_id, user=user)
    rows = db.session.execute(select(Job.status, func.count()).where(Job.project_id == project.id)
                              .group_by(Job.status)).all()
    counts = {status.lower(): 0 for status in STATUSES}
    for status, n in rows:
        counts[status.lower()] = n
    return {"total": sum(counts.values()), **counts}


def output_file(*, job_id: str, user: User) -> ProjectFile:
    job = get_or_404(job_id=job_id, user=user)
    file = db.session.scalar(select(ProjectFile).where(ProjectFile.job_id == job.id, ProjectFile.purpose == "output")
                             .order_by(ProjectFile.created_at.desc()).limit(1))
    if job.status != "Completed" or file is None:
        raise NotFound("This job has no file to download", {"status": job.status}, code="FILE_NOT_FOUND")
    return file


def upload_of(job_id: str) -> ProjectFile | None:
    return db.session.scalar(select(ProjectFile).where(ProjectFile.job_id == job_id, ProjectFile.purpose == "upload")
                             .limit(1))


# ---- cancel and retry -----------------------------------------------------------------------------

def _locked(job_id: str, user: User) -> Job:
    """The job, row-locked (SQLite: the write lock), after checking the user may see it."""
    job = lock_for_runner(str(job_id))
    if job is None or not projects.can_see_job(job=job, user=user):
        db.session.rollback()
        raise JobNotFound()
    return job


def cancel(*, job_id: str, user: User, wait_seconds: float = 3.0) -> Job:
    """Queued: Cancelled at once and taken off its RQ queue. Running: flag, then RQ's stop command."""
    job = _locked(job_id, user)
    if job.status not in ACTIVE:
        status = job.status
        db.session.rollback()
        raise JobStateConflict(f"Only Queued or Running jobs can be cancelled; this job is {status}",
                               {"status": status})
    job.cancel_requested = True
    if job.status == "Queued":
        finish_locked(job, "Cancelled", "job.cancelled")
        db.session.commit()
        _drop_from_rq(job.rq_job_id)
        return job
    db.session.commit()
    _stop_in_rq(job.rq_job_id)
    return _wait_for_end(job.id, wait_seconds)


def _drop_from_rq(rq_job_id: str | None) -> None:
    # The runner ignores a job that is no longer Queued, so a start racing this is harmless (rq #2160).
    try:
        RQJob.fetch(rq_job_id, connection=get_redis(), serializer=JSONSerializer).cancel()
    except (NoSuchJobError, InvalidJobOperation):
        pass
    except RedisError:
        log.warning("could not remove RQ job %s from its queue", rq_job_id, exc_info=True)


def _stop_in_rq(rq_job_id: str | None) -> None:
    try:
        send_stop_job_command(get_redis(), rq_job_id, serializer=JSONSerializer)
    except (NoSuchJobError, InvalidJobOperation):
        pass  # not started yet, or already ended: the runner sees the flag when it starts
    except RedisError:
        log.warning("could not send stop to RQ job %s; the runner's flag check still stops it", rq_job_id,
                    exc_info=True)


def _wait_for_end(job_id: str, seconds: float) -> Job:
    deadline = time.monotonic() + seconds
    with dbsetup.reading():  # the worker must be able to write the end we wait for
        while True:
            db.session.rollback()
            job = db.session.get(Job, job_id)
            if job.status not in ACTIVE or time.monotonic() >= deadline:
                return job
            db.session.rollback()
            time.sleep(0.1)


def retry(*, job_id: str, user: User) -> Job:
    job = _locked(job_id, user)
    if job.status not in ("Failed", "Cancelled"):
        status = job.status
        db.session.rollback()
        raise JobStateConflict(f"Only Failed or Cancelled jobs can be retried; this job is {status}",
                               {"status": status})
    if registry.get(job.type) is None:
        db.session.rollback()
        raise AppError(f"No handler is registered for {job.type} jobs", code="UNKNOWN_JOB_TYPE", status=409)
    job.status, job.progress, job.error, job.result = "Queued", 0, None, None
    job.started_at = job.completed_at = job.retry_at = None
    job.cancel_requested, job.worker_name, job.rq_job_id = False, None, _new_rq_id()
    _record("job.created", job)
    db.session.commit()
    _enqueue_accepted(job)
    return job


# ---- state changes made by the runner -------------------------------------------------------------

def finish_locked(job: Job, status: str, event: str, *, error: str | None = None, result=None) -> None:
    job.status, job.completed_at, job.retry_at = status, clock.utcnow(), None
    if error is not None:
        job.error = error
    if result is not None:
        job.result = result
    if status == "Completed":
        job.progress, job.error = 100, None  # an earlier attempt's transient error no longer applies
    else:
        staging.discard(job.id)  # a failed, cancelled or dead import's staged rows go with it
    _record(event, job)


def lock_for_runner(job_id: str) -> Job | None:
    """Open a write transaction holding the job's row; the caller commits or rolls back (the API's
    cancel and retry take it the same way, through `_locked`)."""
    db.session.rollback()
    with dbsetup.immediate():
        return db.session.scalar(select(Job).where(Job.id == job_id).with_for_update())


def begin(*, job_id: str, rq_job_id: str | None, worker_name: str | None) -> Job | None:
    """Queued -> Running; None when the job is gone, cancelled, or already taken (RQ ran it twice)."""
    job = lock_for_runner(job_id)
    if job is None or job.status != "Queued" or (rq_job_id and job.rq_job_id and rq_job_id != job.rq_job_id):
        db.session.rollback()
        return None
    job.status, job.started_at, job.retry_at = "Running", clock.utcnow(), None
    job.attempts += 1
    staging.discard(job.id)  # every attempt starts clean
    job.worker_name = worker_name
    _record("job.started", job)
    db.session.commit()
    return job


def another_attempt(job: Job, attempt: str | None) -> bool:
    """The row has moved on to a later attempt (retried, re-queued) than the runner's `attempt` (its
    RQ job id): a work horse that outlived its worker must not touch it."""
    return attempt is not None and job.rq_job_id is not None and job.rq_job_id != attempt


def set_progress(*, job_id: str, percent: int, attempt: str | None = None) -> bool:
    """Persist progress with its event; returns whether the runner must stop (cancel requested, or
    its attempt is over)."""
    job = lock_for_runner(job_id)
    if job is None or job.status != "Running" or another_attempt(job, attempt):
        db.session.rollback()
        return True
    if job.cancel_requested:
        db.session.rollback()
        return True
    job.progress = max(0, min(100, int(percent)))
    _record("job.progress", job)
    db.session.commit()
    return False


def cancel_requested(job_id: str, attempt: str | None = None) -> bool:
    """Stop? Also when the job was ended elsewhere (the reconciler failed it while its work horse lived on)
    or has moved on to a later attempt."""
    row = db.session.execute(select(Job.cancel_requested, Job.status, Job.rq_job_id).where(Job.id == job_id)).first()
    db.session.rollback()
    return row is None or bool(row.cancel_requested) or row.status != "Running" or another_attempt(row, attempt)


def mark(*, job_id: str, status: str, error: str | None = None, only_if_running: bool = True,
         attempt: str | None = None) -> Job | None:
    """End a job Failed or Cancelled (when it is still Queued/Running, and still on `attempt` if given)."""
    job = lock_for_runner(job_id)
    if job is not None and another_attempt(job, attempt):
        db.session.rollback()  # a later attempt owns the row, and the rows it staged
        return None
    if job is None or job.status not in (("Running",) if only_if_running else ACTIVE):
        if job is not None and job.status in ("Failed", "Cancelled"):
            staging.discard(job_id)  # rows a horse staged after its job was ended elsewhere
            db.session.commit()
        else:
            db.session.rollback()
        return None
    finish_locked(job, status, "job.failed" if status == "Failed" else "job.cancelled", error=error)
    db.session.commit()
    return job


def schedule_retry(*, job_id: str, error: str, delay: int, attempt: str | None = None) -> None:
    job = lock_for_runner(job_id)
    if job is None or job.status != "Running" or another_attempt(job, attempt):
        db.session.rollback()
        return
    job.status, job.error, job.progress = "Queued", error, 0
    job.retry_at = clock.utcnow() + timedelta(seconds=delay)
    staging.discard(job.id)
    _record("job.progress", job)  # back to Queued, waiting for RQ's retry: the payload says so
    db.session.commit()


def requeue(*, job_id: str) -> bool:
    """Enqueue again a Queued job whose RQ job was lost (Redis flushed, a crash between commit and enqueue)."""
    job = lock_for_runner(job_id)
    if job is None or job.status != "Queued":
        db.session.rollback()
        return False
    job.rq_job_id, job.retry_at = _new_rq_id(), None
    db.session.commit()
    _enqueue(job)
    return True
