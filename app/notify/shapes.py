"""Project jobs seen through the notifications spec: states, socket frames and webhook payloads.

The project jobs API speaks Queued/Running/Completed/Failed/Cancelled; this surface speaks the
spec's waiting/active/completed/failed/delayed. A cancelled job is `failed` here, with
`failedReason` "Cancelled" and `cancelled: true`, and its socket and webhook events are failures.
"""
from app import clock

# event type recorded by project jobs → the spec's event kind (None: not announced on this surface)
KINDS = {"job.progress": "progress", "job.completed": "completed", "job.failed": "failed",
         "job.cancelled": "failed"}
CANCELLED_REASON = "Cancelled"
STATES = ("waiting", "active", "completed", "failed", "delayed")


def state_of(job) -> str:
    if job.status == "Queued":
        return "delayed" if getattr(job, "retry_at", None) is not None else "waiting"
    return {"Running": "active", "Completed": "completed"}.get(job.status, "failed")


def failed_reason(job) -> str | None:
    if job.status == "Cancelled":
        return CANCELLED_REASON
    return job.error if job.status == "Failed" else None


def job_summary(job) -> dict:
    return {
        "id": str(job.id),
        "name": job.type,
        "state": state_of(job),
        "progress": job.progress or 0,
        "timestamp": {"created": clock.epoch_ms(job.created_at), "started": clock.epoch_ms(job.started_at),
                      "finished": clock.epoch_ms(job.completed_at)},
    }


def job_detail(job) -> dict:
    out = job_summary(job)
    out["result"] = job.result if job.status == "Completed" else None
    out["failedReason"] = failed_reason(job)
    if job.status == "Cancelled":
        out["cancelled"] = True
    return out


def _error_of(event_type: str, payload: dict):
    if event_type == "job.cancelled":
        return CANCELLED_REASON
    return payload.get("error") or payload.get("failedReason")


def _event_state(event_type: str, payload: dict) -> str:
    kind = KINDS[event_type]
    if kind != "progress":
        return kind
    # A progress event that put the job back to Queued announces a retry waiting for its time.
    return {"Queued": "delayed" if payload.get("error") else "waiting"}.get(payload.get("status"), "active")


def socket_data(event_type: str, payload: dict, subject: str | None) -> dict:
    kind = KINDS[event_type]
    data = {"jobId": str(payload.get("id") or subject), "jobname": payload.get("type") or payload.get("name"),
            "state": _event_state(event_type, payload),
            "progress": payload.get("progress")}
    if kind == "completed":
        data["result"] = payload.get("result")
    elif kind == "failed":
        data["error"] = _error_of(event_type, payload)
        if event_type == "job.cancelled":
            data["cancelled"] = True
    return data


def webhook_payload(event_type: str, payload: dict, user_id, subject: str | None) -> dict:
    """Exactly the spec's three shapes."""
    kind = KINDS[event_type]
    body = {"id": str(payload.get("id") or subject), "jobname": payload.get("type") or payload.get("name"),
            "userId": user_id}
    if kind == "progress":
        body["progress"] = payload.get("progress")
    elif kind == "completed":
        body["result"] = payload.get("result")
    else:
        body["error"] = _error_of(event_type, payload)
    body["eventType"] = kind
    return body
