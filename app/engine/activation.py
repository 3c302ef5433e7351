"""Activation: hand activatable jobs of a type to one worker, exactly once while they are active.

PostgreSQL: `SELECT … FOR UPDATE OF engine_jobs SKIP LOCKED LIMIT n`, then one UPDATE, in one
transaction, so concurrent workers take disjoint jobs. SQLite: the same statements inside a
`BEGIN IMMEDIATE` transaction, which serialises writers.

A job is activatable when it is ACTIVATABLE (new, backed off after a failure, released by
resolving an incident) or ACTIVATED with its deadline passed (the worker timed out); both keep
`available_at` (for ACTIVATED: the deadline), so one range scan of the partial index finds them.
A timed-out job re-activated here gets a JOB_TIMED_OUT history row and spends no retry.
"""
from datetime import timedelta

from sqlalchemy import func, insert, select, text, update

from app import clock
from app.engine import tx
from app.engine.models import ACTIVATED, OPEN_PREDICATE, Instance, Job, JobHistory
from app.extensions import db

_OPEN = text(OPEN_PREDICATE.replace("state", "engine_jobs.state", 1))


def activate_now(*, tenant: str, job_type: str, worker: str, max_jobs: int, timeout_ms: int,
                 fetch_variables: list | None = None) -> tuple[list[dict], object]:
    """Activate up to max_jobs now. Returns (jobs, when the next one becomes activatable or None)."""
    with tx.write():
        now = clock.utcnow()
        query = (select(Job.key, Job.state, Job.worker, Job.deadline, Job.attempts, Job.type, Job.instance_key,
                        Job.element_id, Job.element_instance_key, Job.retries, Job.custom_headers, Job.created_at,
                        Instance.variables)
                 .join(Instance, Instance.key == Job.instance_key)
                 .where(Job.tenant == tenant, Job.type == job_type, _OPEN, Job.available_at <= now)
                 .order_by(Job.available_at).limit(max_jobs))
        if tx.is_postgres():
            query = query.with_for_update(of=Job, skip_locked=True)
        rows = db.session.execute(query).all()
        if not rows:
            upcoming = db.session.scalar(select(func.min(Job.available_at)).where(
                Job.tenant == tenant, Job.type == job_type, _OPEN, Job.available_at > now))
            return [], upcoming
        deadline = now + timedelta(milliseconds=timeout_ms)
        db.session.execute(update(Job).where(Job.key.in_([r.key for r in rows])).values(
            state=ACTIVATED, worker=worker, activated_at=now, deadline=deadline, available_at=deadline,
            timeout_ms=timeout_ms, max_jobs_for_worker=max_jobs, attempts=Job.attempts + 1),
            execution_options={"synchronize_session": False})
        history = []
        for r in rows:
            if r.state == ACTIVATED:  # its worker's deadline passed: released without spending a retry
                history.append({"job_key": r.key, "at": r.deadline, "action": "JOB_TIMED_OUT", "worker": r.worker,
                                "attempt": r.attempts, "error": None, "backoff_ms": None,
                                "details": {"details": "Job deadline passed before completion"}})
                tx.job_event("job.timed_out", job_key=r.key, job_type=r.type, tenant=tenant,
                             instance_key=r.instance_key, worker=r.worker)
            history.append({"job_key": r.key, "at": now, "action": "JOB_ACTIVATED", "worker": worker,
                            "attempt": r.attempts + 1, "error": None, "backoff_ms": None,
                            "details": {"details": "Job activated by worker"}})
            tx.job_event("job.activated", job_key=r.key, job_type=r.type, tenant=tenant,
                         instance_key=r.instance_key, worker=worker)
        db.session.execute(insert(JobHistory), history)
    wanted = set(fetch_variables or ())
    return [{
        "key": r.key, "type": r.type, "process_instance_id": r.instance_key, "element_id": r.element_id,
        "element_instance_id": r.element_instance_key, "worker": worker, "retries": r.retries,
        "deadline": clock.iso(deadline),
        "variables": {k: v for k, v in r.variables.items() if k in wanted} if wanted else r.variables,
        "custom_headers": r.custom_headers, "created_at": clock.iso(r.created_at), "activated_at": clock.iso(now),
    } for r in rows], None
