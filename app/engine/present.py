"""Reading jobs: the spec's job detail, summaries, and the keyset-paginated list.

Derived figures, defined honestly:
- `elapsed_time_ms` / `remaining_time_ms`: since activation / until the deadline (active jobs).
- `timeout_risk`: elapsed ÷ timeout — LOW below 50 %, MEDIUM below 80 %, HIGH from 80 % (active jobs).
- `estimated_completion_time`: activation + the mean processing time of this type's last 100
  completed jobs in the tenant (null when none completed yet).
- `total_duration_ms`: activation → completion; `system_overhead_ms`: the server's own time on the
  completion request; `processing_duration_ms`: the rest (the worker's time, network included);
  `completion_efficiency`: processing ÷ total × 100.
"""
import base64
from datetime import datetime

from sqlalchemy import func, or_, select

from app import clock
from app.engine import bpmn, deploy
from app.engine.errors import JobNotFound
from app.engine.models import (ACTIVATED, COMPLETED, STATE_OF_STATUS, STATUS, Incident, Instance, Job, JobHistory,
                               by_key)
from app.errors import ValidationError
from app.extensions import db


def status_of(job: Job) -> str:
    return STATUS[job.state]


def process(p) -> dict:
    return {"process_id": p.process_id, "version": p.version, "name": p.name, "checksum": p.checksum,
            "tenant_id": p.tenant, "created_at": clock.iso(p.created_at)}


def incident(i: Incident) -> dict:
    return {"incident_key": i.key, "type": i.type, "state": i.state, "process_instance_id": i.instance_key,
            "element_id": i.element_id, "element_instance_id": i.element_instance_key, "job_key": i.job_key,
            "job_type": i.job_type, "error_code": i.error_code, "message": i.message,
            "created_at": clock.iso(i.created_at), "resolved_at": clock.iso(i.resolved_at)}


def job_summary(j: Job) -> dict:
    return {"key": j.key, "type": j.type, "status": status_of(j), "process_instance_id": j.instance_key,
            "process_id": j.process_id, "element_id": j.element_id, "element_instance_id": j.element_instance_key,
            "worker": j.worker, "retries": j.retries, "created_at": clock.iso(j.created_at),
            "activated_at": clock.iso(j.activated_at), "deadline": clock.iso(j.deadline),
            "ended_at": clock.iso(j.ended_at), "incident_key": j.incident_key}


def _history_entry(h: JobHistory) -> dict:
    entry = {"timestamp": clock.iso(h.at), "action": h.action}
    if h.worker:
        entry["worker_id"] = h.worker
    if h.attempt is not None and h.action.startswith("JOB_FAILED"):
        entry["attempt"] = h.attempt
    if h.error:
        entry["error"] = h.error
    for name, value in (h.details or {}).items():
        if value is not None and name not in ("system_overhead_ms",):
            entry[name] = value
    return entry


def _mean_processing_ms(tenant: str, job_type: str) -> float | None:
    recent = select(Job.activated_at, Job.ended_at).where(
        Job.tenant == tenant, Job.type == job_type, Job.state == COMPLETED).order_by(
        Job.ended_at.desc()).limit(100)
    spans = [clock.ms_between(a, e) for a, e in db.session.execute(recent) if a and e]
    return sum(spans) / len(spans) if spans else None


def job_detail(*, tenant: str, key: str) -> dict:
    job = db.session.scalar(select(Job).where(*by_key(Job, key, tenant)))
    if job is None:
        raise JobNotFound(key)
    now = clock.utcnow()
    variables = db.session.scalar(select(Instance.variables).where(Instance.key == job.instance_key))
    history = list(db.session.scalars(select(JobHistory).where(JobHistory.job_key == key).order_by(JobHistory.id)))
    element = deploy.definition(job.process_pk).elements.get(job.element_id)
    status = status_of(job)
    data = {"job_key": job.key, "type": job.type, "status": status, "created_at": clock.iso(job.created_at),
            "activated_at": clock.iso(job.activated_at), "deadline": clock.iso(job.deadline),
            "timeout_ms": job.timeout_ms}
    if job.state == COMPLETED:
        data["completed_at"] = clock.iso(job.ended_at)
    if job.state in ("FAILED", "ERROR_THROWN", "CANCELLED"):
        data["failed_at" if job.state != "CANCELLED" else "cancelled_at"] = clock.iso(job.ended_at)
    active = job.state == ACTIVATED
    if active:
        data["elapsed_time_ms"] = clock.ms_between(job.activated_at, now)
        data["remaining_time_ms"] = max(0, clock.ms_between(now, job.deadline))
    data["process_context"] = {
        "process_instance_id": job.instance_key, "process_id": job.process_id,
        "process_version": job.process_version, "element_id": job.element_id,
        "element_type": bpmn.TASK, "element_name": element.name if element else None,
        "element_instance_id": job.element_instance_key, "token_id": job.token_id}
    assignment = None
    if job.worker:
        assignment = {"worker_id": job.worker, "worker_type": job.type, "assigned_at": clock.iso(job.activated_at),
                      "max_jobs_for_worker": job.max_jobs_for_worker}
        if active:
            assignment["current_jobs_for_worker"] = db.session.scalar(select(func.count()).select_from(Job).where(
                Job.tenant == tenant, Job.type == job.type, Job.worker == job.worker, Job.state == ACTIVATED,
                Job.deadline >= now))
    data["worker_assignment"] = assignment
    data["retry_configuration"] = {"retries": job.retries, "original_retries": job.original_retries,
                                   "retries_used": max(0, job.original_retries - job.retries),
                                   "retry_backoff": "EXPONENTIAL", "max_retry_delay_ms": 60000}
    data["variables"] = variables
    data["custom_headers"] = job.custom_headers
    data["tenant_id"] = job.tenant
    data["execution_history"] = [_history_entry(h) for h in history]
    completed = next((h for h in history if h.action == "JOB_COMPLETED"), None)
    if completed is not None:
        total = clock.ms_between(job.activated_at, job.ended_at)
        overhead = (completed.details or {}).get("system_overhead_ms", 0)
        data["execution_summary"] = {
            "total_duration_ms": total, "activation_duration_ms": clock.ms_between(job.created_at, job.activated_at),
            "processing_duration_ms": total - overhead, "system_overhead_ms": overhead,
            "completed_by": job.completed_by, "result_variables": job.result_variables or {}}
    failures = [h for h in history if h.action in ("JOB_FAILED_RETRY", "JOB_FAILED_FINAL")]
    if failures:
        attempts = [{"attempt": i + 1, "failed_at": clock.iso(h.at), "error": h.error,
                     **({"backoff_ms": h.backoff_ms} if h.backoff_ms is not None else {"final_attempt": True})}
                    for i, h in enumerate(failures)]
        data["failure_information"] = {"error_message": job.error_message, "error_code": job.error_code,
                                       "final_attempt": job.state == "FAILED", "total_attempts": len(failures),
                                       "failure_history": attempts}
    if job.incident_key or job.state in ("FAILED", "ERROR_THROWN"):
        inc = db.session.get(Incident, job.incident_key) if job.incident_key else None
        data["incident_information"] = {"incident_created": inc is not None,
                                        "incident_id": inc.key if inc else None,
                                        "incident_type": inc.type if inc else None,
                                        "incident_state": inc.state if inc else None,
                                        "created_at": clock.iso(inc.created_at) if inc else None}
    metrics = {"creation_to_activation_ms": clock.ms_between(job.created_at, job.activated_at)}
    if active:
        mean = _mean_processing_ms(tenant, job.type)
        from datetime import timedelta
        metrics["estimated_completion_time"] = (clock.iso(job.activated_at + timedelta(milliseconds=mean))
                                                if mean is not None else None)
        ratio = data["elapsed_time_ms"] / job.timeout_ms if job.timeout_ms else 0
        metrics["timeout_risk"] = "LOW" if ratio < 0.5 else "MEDIUM" if ratio < 0.8 else "HIGH"
    if completed is not None:
        summary = data["execution_summary"]
        metrics["activation_to_completion_ms"] = summary["total_duration_ms"]
        metrics["completion_efficiency"] = (round(summary["processing_duration_ms"] * 100 / summary["total_duration_ms"], 1)
                                            if summary["total_duration_ms"] else 100.0)
    data["performance_metrics"] = metrics
    return data


def _encode(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.key}"  # full precision: ms would skip rows
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, key = raw.split("|", 1)
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return moment, key
    except (ValueError, UnicodeDecodeError):
        raise ValidationError({"cursor": "Invalid cursor"}) from None


def list_jobs(*, tenant: str, type: str | None = None, status: str | None = None, worker: str | None = None,
              process_instance_id: str | None = None, limit: int = 50, cursor: str | None = None) -> dict:
    """Newest first; the cursor is the last row's (created_at, key), so every page is an index range."""
    query = select(Job).where(Job.tenant == tenant)
    if type:
        query = query.where(Job.type == type)
    if status:
        if status not in STATE_OF_STATUS:
            raise ValidationError({"status": f"Status must be one of {', '.join(STATE_OF_STATUS)}"})
        query = query.where(Job.state == STATE_OF_STATUS[status])
    if worker:
        query = query.where(Job.worker == worker)
    if process_instance_id:
        query = query.where(Job.instance_key == process_instance_id)
    if cursor:
        at, key = _decode(cursor)
        # `created_at <= at` bounds the index range; the OR alone would be a filter over every newer row.
        query = query.where(Job.created_at <= at, or_(Job.created_at < at, Job.key < key))
    rows = list(db.session.scalars(query.order_by(Job.created_at.desc(), Job.key.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"jobs": [job_summary(j) for j in rows], "next_cursor": _encode(rows[-1]) if more else None}
