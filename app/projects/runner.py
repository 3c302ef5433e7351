"""What RQ runs: `run_job(job_id)` takes the job, calls its registered handler, and records the end.

Safe to run twice: only a Queued job whose RQ id matches is started. A handler's result may be a
callable; it runs inside the transaction that marks the job Completed, after a last look at the
cancellation flag, so a cancelled or failed import changes no record (its staged rows are dropped
when the job ends, see jobs.finish_locked).
"""
import logging
import time
from contextlib import contextmanager

from flask import has_app_context
from rq import Retry, get_current_job

from app import dbsetup
from app.extensions import db
from app.projects import handlers  # noqa: F401  (the built-in handlers register themselves)
from app.projects import jobs, registry
from app.projects.models import ProjectFile

log = logging.getLogger("conveyor.projects.runner")
PROGRESS_INTERVAL = 0.5   # seconds between persisted progress updates
CANCEL_CHECK_INTERVAL = 0.2


@contextmanager
def _app_context():
    if has_app_context():
        yield
        return
    from app import create_app
    with create_app().app_context():
        yield


class JobContext:
    """What a handler gets: the job's ids and params, progress, cancellation and file storage."""

    def __init__(self, job):
        self.job_id = job.id
        self.project_id = job.project_id
        self.params = dict(job.params or {})
        self.attempt = job.attempts
        self.rq_job_id = job.rq_job_id  # this attempt; a retry gives the row a new one
        self._last_percent = None
        self._last_write = 0.0
        self._last_check = 0.0
        self.finishing = False

    def progress(self, percent: float, *, force: bool = False) -> None:
        """Report 0-100; written at most every PROGRESS_INTERVAL seconds unless it reaches 100 or `force`
        (a phase boundary worth showing, e.g. an import's rows all staged before the merge)."""
        percent = int(max(0, min(100, percent)))
        now = time.monotonic()
        if self.finishing or percent == self._last_percent:
            return
        if percent < 100 and not force and now - self._last_write < PROGRESS_INTERVAL:
            return
        self._last_percent, self._last_write = percent, now
        self._last_check = now
        if jobs.set_progress(job_id=self.job_id, percent=percent, attempt=self.rq_job_id):
            raise registry.Cancelled()

    def check_cancelled(self) -> None:
        now = time.monotonic()
        if self.finishing or now - self._last_check < CANCEL_CHECK_INTERVAL:
            return
        self._last_check = now
        if jobs.cancel_requested(self.job_id, attempt=self.rq_job_id):
            raise registry.Cancelled()

    def upload(self) -> ProjectFile | None:
        return jobs.upload_of(self.job_id)

    def store_file(self, name: str, content_type: str, data: bytes) -> None:
        """Keep an output file in the database (downloaded from GET /api/jobs/{id}/download)."""
        with dbsetup.write(db.session):  # the handler's reads may still be open: lock at BEGIN on SQLite
            db.session.query(ProjectFile).filter_by(job_id=self.job_id, purpose="output").delete()
            db.session.add(ProjectFile(project_id=self.project_id, job_id=self.job_id, purpose="output",
                                       name=name, content_type=content_type, size=len(data), content=data))


def run_job(job_id: str):
    """The RQ task. Returns a Retry for transient errors; raises for failures (RQ records the trace)."""
    with _app_context():
        db.session.remove()  # a forked horse must not reuse the parent's session state
        rq_job = get_current_job()
        job = jobs.begin(job_id=job_id, rq_job_id=rq_job.id if rq_job else None,
                         worker_name=rq_job.worker_name if rq_job else None)
        if job is None:
            return None
        handler = registry.get(job.type)
        ctx = JobContext(job)
        try:
            if handler is None:
                raise LookupError(f"no handler is registered for {job.type} jobs")
            outcome = handler.run(ctx)
            return _complete(ctx, outcome)
        except registry.Cancelled:
            db.session.rollback()
            jobs.mark(job_id=job_id, status="Cancelled", attempt=ctx.rq_job_id)
            return None
        except registry.Transient as exc:
            db.session.rollback()
            intervals = handler.retry_intervals
            if ctx.attempt <= len(intervals):
                jobs.schedule_retry(job_id=job_id, error=_message(exc), delay=intervals[ctx.attempt - 1],
                                    attempt=ctx.rq_job_id)
                return Retry(max=len(intervals), interval=list(intervals))
            jobs.mark(job_id=job_id, status="Failed", error=_message(exc), attempt=ctx.rq_job_id)
            raise
        except Exception as exc:
            db.session.rollback()
            jobs.mark(job_id=job_id, status="Failed", error=_message(exc), attempt=ctx.rq_job_id)
            raise
        finally:
            db.session.remove()


def _complete(ctx: JobContext, outcome):
    ctx.finishing = True
    job = jobs.lock_for_runner(ctx.job_id)
    if job is None or job.status != "Running" or job.cancel_requested or jobs.another_attempt(job, ctx.rq_job_id):
        db.session.rollback()
        jobs.mark(job_id=ctx.job_id, status="Cancelled", attempt=ctx.rq_job_id)
        return None
    result = outcome() if callable(outcome) else outcome
    jobs.finish_locked(job, "Completed", "job.completed", result=result if result is not None else {})
    db.session.commit()
    return {"job": ctx.job_id, "status": "Completed"}


def _message(exc: Exception) -> str:
    text = str(exc).strip()
    if isinstance(exc, (ValueError, registry.Transient)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def on_stopped(job, connection, *args, **kwargs):
    """RQ's stopped callback (in the worker process, after the stop command killed the work horse)."""
    with _app_context():
        try:
            jobs.mark(job_id=job.args[0], status="Cancelled", attempt=job.id)
        finally:
            db.session.remove()

