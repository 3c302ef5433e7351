"""A worker's verbs on an activated job: complete, fail, throw a BPMN error, update timeout or retries.

Each runs in one transaction that locks the job first, then its process instance (the order used
everywhere: see completion.py, which holds `complete`), so two parallel branches of one instance
move its tokens one after the other and no lock cycle forms with cancel. A terminal state is
written once: the state check and the write happen under the row lock.
"""
import json
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from app import clock
from app.engine import bpmn, deploy, tx
from app.engine.errors import (InvalidVariables, JobNotCompletable, JobNotFailable, JobNotFound,
                               JobNotUpdatable)
from app.engine.models import (ACTIVATABLE, ACTIVATED, ERROR_THROWN, FAILED, STATUS, Instance, Job,
                               JobHistory, by_key)
from app.engine.runtime import Movement
from app.extensions import db

MAX_ERROR_MESSAGE = 4000
BASE_BACKOFF_MS = 2000
MAX_RETRY_DELAY_MS = 60000
MAX_VARIABLES_BYTES = 1024 * 1024

_REASONS = {
    "CANCELLED": "Job was cancelled before completion",
    "COMPLETED": "Job was already completed",
    "FAILED": "Job failed and has an open incident",
    "ERROR_THROWN": "A BPMN error was thrown for this job",
    "ACTIVATABLE": "Job is not activated by any worker",
    "TIMED_OUT": "Job deadline passed; it was released for activation again",
}


def check_variables(variables) -> dict:
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise InvalidVariables(details={"validation_errors": [
            {"field": "variables", "error": "Must be a JSON object", "provided_value": variables}]})
    size = len(json.dumps(variables))
    if size > MAX_VARIABLES_BYTES:
        raise InvalidVariables(details={"validation_errors": [
            {"field": "variables", "error": f"Must be at most {MAX_VARIABLES_BYTES} bytes as JSON",
             "provided_value": f"{size} bytes"}]})
    return variables


def merge_variables(inst: Instance, result: dict) -> dict:
    """Merge a job's result into the instance; a key sent as null is removed."""
    current = dict(inst.variables)
    changes = {"added": [], "modified": [], "removed": []}
    for name, value in result.items():
        if value is None:
            if name in current:
                del current[name]
                changes["removed"].append(name)
        elif name not in current:
            current[name] = value
            changes["added"].append(name)
        elif current[name] != value:
            current[name] = value
            changes["modified"].append(name)
    inst.variables = current
    return changes


def refusal(job: Job, worker: str | None, now, error=JobNotCompletable):
    if worker and job.worker and job.worker != worker and job.state == ACTIVATED:
        return JobNotFound(job.key, reason="Job belongs to different worker", completing=True)
    status = STATUS[job.state]
    # ACTIVATABLE with a deadline: released by the timeout sweeper (fail and resolve clear it)
    if job.state in (ACTIVATED, ACTIVATABLE) and job.deadline is not None and job.deadline < now:
        status = "TIMED_OUT"
    return error(details={"job_key": job.key, "current_status": status, "worker_id": job.worker,
                          "reason": _REASONS.get(status, "Job is not active")})


def _locked_job(tenant: str, key: str) -> tuple[Instance, Job]:
    """Lock the job, then its instance (the engine's lock order)."""
    job = db.session.scalar(select(Job).where(*by_key(Job, key, tenant)).with_for_update())
    if job is None:
        raise JobNotFound(key, completing=True)
    inst = db.session.scalar(select(Instance).where(Instance.key == job.instance_key).with_for_update())
    return inst, job


def _check_active(job: Job, worker: str | None, now, error) -> None:
    if job.state != ACTIVATED or job.deadline < now or (worker and job.worker != worker):
        raise refusal(job, worker, now, error)


def backoff_ms(job: Job, requested: int | None) -> int:
    if requested is not None:
        return min(requested, current_app.config.get("MAX_RETRY_DELAY_MS", MAX_RETRY_DELAY_MS))
    used = max(0, job.original_retries - job.retries)
    return min(BASE_BACKOFF_MS * 2 ** used, MAX_RETRY_DELAY_MS)


def fail(*, tenant: str, key: str, worker: str | None = None, retries: int | None = None,
         error_message: str | None = None, error_code: str | None = None,
         retry_backoff_ms: int | None = None) -> dict:
    message = (error_message or "")[:MAX_ERROR_MESSAGE]
    with tx.write():
        inst, job = _locked_job(tenant, key)
        now = clock.utcnow()
        _check_active(job, worker, now, JobNotFailable)
        left = job.retries - 1 if retries is None else retries
        job.error_message, job.error_code = message, error_code
        if left > 0:
            delay = backoff_ms(job, retry_backoff_ms)
            job.state, job.retries, job.available_at, job.retry_backoff_ms = ACTIVATABLE, left, now + timedelta(
                milliseconds=delay), delay
            job.deadline = None
            db.session.add(JobHistory(job_key=key, at=now, action="JOB_FAILED_RETRY", worker=job.worker,
                                      attempt=job.attempts, error=message, backoff_ms=delay,
                                      details={"error_code": error_code, "retries_left": left}))
            tx.job_event("job.failed", job_key=key, job_type=job.type, tenant=tenant, instance_key=inst.key,
                         worker=job.worker, retries=left, backoff_ms=delay)
            tx.wake(tenant=tenant, job_type=job.type, at=job.available_at)
        else:
            job.state, job.retries, job.ended_at, job.deadline = FAILED, 0, now, None
            db.session.add(JobHistory(job_key=key, at=now, action="JOB_FAILED_FINAL", worker=job.worker,
                                      attempt=job.attempts, error=message, details={"error_code": error_code}))
            Movement(inst, None, now).incident("JOB_FAILURE", job.element_id, job.element_instance_key,
                                               message or "Job failed with no retries left", job=job,
                                               error_code=error_code)
            tx.job_event("job.failed", job_key=key, job_type=job.type, tenant=tenant, instance_key=inst.key,
                         worker=job.worker, retries=0, incident_key=job.incident_key)
        answer = {"job_key": key, "status": "ACTIVATABLE" if left > 0 else "FAILED", "retries": job.retries,
                  "failed_at": clock.iso(now), "error_message": message, "error_code": error_code,
                  "retry_backoff_ms": job.retry_backoff_ms if left > 0 else None,
                  "next_activation_at": clock.iso(job.available_at) if left > 0 else None,
                  "incident_key": job.incident_key}
    return answer


def throw_error(*, tenant: str, key: str, error_code: str, error_message: str | None = None,
                variables=None, worker: str | None = None) -> dict:
    result = check_variables(variables)
    message = (error_message or "")[:MAX_ERROR_MESSAGE]
    with tx.write():
        inst, job = _locked_job(tenant, key)
        now = clock.utcnow()
        _check_active(job, worker, now, JobNotCompletable)
        job.state, job.ended_at, job.deadline = ERROR_THROWN, now, None
        job.error_code, job.error_message, job.result_variables = error_code, message, result
        changes = merge_variables(inst, result)
        defn = deploy.definition(job.process_pk)
        boundary = bpmn.find_boundary_for_error(defn, job.element_id, error_code)
        move = Movement(inst, defn, now)
        db.session.add(JobHistory(job_key=key, at=now, action="JOB_ERROR_THROWN", worker=job.worker,
                                  attempt=job.attempts, error=message,
                                  details={"error_code": error_code, "caught_by": boundary.id if boundary else None}))
        # Events in causal order: the job, then where the error led (a boundary event or an incident).
        tx.job_event("job.error_thrown", job_key=key, job_type=job.type, tenant=tenant, instance_key=inst.key,
                     worker=job.worker, error_code=error_code)
        if boundary is not None:
            move.catch_error(job, boundary)
            move.announce_jobs()
        else:
            move.incident("UNHANDLED_ERROR_EVENT", job.element_id, job.element_instance_key,
                          f"No error boundary event catches error code '{error_code}'"
                          + (f": {message}" if message else ""), job=job, error_code=error_code)
        move.flush()
        answer = {"job_key": key, "status": "ERROR_THROWN", "error_code": error_code, "error_message": message,
                  "caught": boundary is not None,
                  "boundary_event": ({"element_id": boundary.id, "element_name": boundary.name}
                                     if boundary else None),
                  "incident_key": job.incident_key, "variables_updated": changes,
                  "process_continuation": {"process_instance_id": inst.key, "element_id": job.element_id,
                                           "token_id": job.token_id, "next_activities": move.next_activities}}
    return answer


def update_job(*, tenant: str, key: str, timeout: int | None = None, retries: int | None = None) -> None:
    with tx.write():
        job = db.session.scalar(select(Job).where(*by_key(Job, key, tenant)).with_for_update())
        if job is None:
            raise JobNotFound(key)
        now = clock.utcnow()
        if timeout is not None:
            if job.state != ACTIVATED or job.deadline < now:
                raise refusal(job, None, now, JobNotUpdatable)
            job.deadline = job.available_at = now + timedelta(milliseconds=timeout)
            job.timeout_ms = clock.ms_between(job.activated_at, job.deadline)
            db.session.add(JobHistory(job_key=key, at=now, action="JOB_TIMEOUT_UPDATED", worker=job.worker,
                                      details={"details": f"Deadline moved to {clock.iso(job.deadline)}"}))
        if retries is not None:
            if job.state not in (ACTIVATABLE, ACTIVATED):
                raise refusal(job, None, now, JobNotUpdatable)
            job.retries = retries
            db.session.add(JobHistory(job_key=key, at=now, action="JOB_RETRIES_UPDATED", worker=job.worker,
                                      details={"details": f"Retries set to {retries}"}))
        tx.job_event("job.updated", job_key=key, job_type=job.type, tenant=tenant, instance_key=job.instance_key,
                     worker=job.worker)
