"""The notifications surface of project jobs: submit by handler name, poll one, list a page.

These are the project jobs, seen in the spec's shapes (app/notify/shapes.py); here a user sees only
the jobs they created.
"""
import json
import logging
import math
import time

from flask import current_app
from limits import parse as parse_limit
from redis.exceptions import RedisError
from sqlalchemy import func, select

from app.errors import PayloadTooLarge, RateLimited, ValidationError
from app.extensions import db, limiter
from app.notify import shapes, webhooks
from app.projects import jobs as project_jobs
from app.projects import registry
from app.projects import service as projects
from app.projects.models import Job

log = logging.getLogger("conveyor.notify.jobs")

MAX_DATA_BYTES = 65536
SUBMIT_RATE_LIMIT = "120/minute"


def submittable() -> list[str]:
    return sorted(n for n in registry.names() if not registry.get(n).needs_project)


def _rate_limit(user) -> None:
    item = parse_limit(current_app.config.get("SUBMIT_RATE_LIMIT", SUBMIT_RATE_LIMIT))
    try:
        allowed = limiter.limiter.hit(item, "submit-job", str(user.id))
    except RedisError as exc:  # the limits live in Redis; the setting flask-limiter obeys decides here too
        if not current_app.config.get("RATELIMIT_SWALLOW_ERRORS"):
            raise
        log.warning("submission rate limit not checked: %s", exc)
        return
    if not allowed:
        reset = limiter.limiter.get_window_stats(item, "submit-job", str(user.id)).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        raise RateLimited("Too many job submissions", {"limit": str(item)},
                          headers={"Retry-After": str(retry_after)})


def submit(*, user, name: str, data: dict | None, webhook_url: str | None) -> dict:
    _rate_limit(user)
    known = submittable()
    if name not in known:
        raise ValidationError({"name": f"Unknown job name {name!r}; known: {', '.join(known)}"})
    cap = current_app.config.get("SUBMIT_MAX_DATA_BYTES", MAX_DATA_BYTES)
    size = len(json.dumps(data or {}, separators=(",", ":")))
    if size > cap:
        raise PayloadTooLarge("`data` is too large", {"max_bytes": cap, "size": size})
    if webhook_url:
        webhooks.check_url(webhook_url)  # refuse before the job exists
    job = project_jobs.start_job(name=name, user=user, params=data or {})
    if webhook_url:
        webhooks.create_legacy(user_id=user.id, job_id=job.id, url=webhook_url)
    return {"jobId": job.id}


def get(*, user, job_id: str) -> dict:
    job = db.session.get(Job, str(job_id))
    if job is None or job.created_by != user.id:
        raise project_jobs.JobNotFound(details={"jobId": job_id})
    return shapes.job_detail(job)


def _state_clause(state: str):
    return {
        "waiting": (Job.status == "Queued") & Job.retry_at.is_(None),
        "delayed": (Job.status == "Queued") & Job.retry_at.is_not(None),
        "active": Job.status == "Running",
        "completed": Job.status == "Completed",
        "failed": Job.status.in_(("Failed", "Cancelled")),
    }[state]


def list(*, user, page: int, limit: int, status: str | None) -> dict:  # noqa: A001  (service vocabulary)
    query = select(Job).where(Job.created_by == user.id)
    if status:
        query = query.where(_state_clause(status))
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.order_by(Job.created_at.desc(), Job.id).offset((page - 1) * limit)
                              .limit(limit)).all()
    return {"jobs": [shapes.job_summary(j) for j in rows],
            "pagination": {"total": total, "page": page, "limit": limit, "pages": math.ceil(total / limit)}}


def may_watch(*, user, job_id: str) -> bool:
    """Sockets may subscribe to any job the project jobs rules let the user see."""
    job = db.session.get(Job, str(job_id))
    return job is not None and projects.can_see_job(job=job, user=user)
