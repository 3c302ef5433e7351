"""Worker API routes for jobs: authenticate, parse, call one engine service, wrap in the envelope.

Activate and complete are the hot paths: their answers are built as dicts of exactly the schema's
fields and sent as JSON directly (flask-smorest passes a Response through), which saves the
marshmallow dump; the schemas still describe them in OpenAPI.
"""
import json

from flask import current_app, g

from app.api.base import envelope, ok
from app.api.v1 import bp
from app.auth.guards import require_key
from app.engine import completion, jobs, present, stats, sweeper, waiting
from app.engine import schemas as s
from app.engine.request_time import received_at

# Error answers, documented in the OpenAPI description (the envelope is added by app/api/error_docs.py).
_JOB_NOT_FOUND = ("`JOB_NOT_FOUND`: no such job in the key's tenant (`details.possible_reasons`), or `worker` "
                  "was given and another worker holds it (`details.reason`)")
_BAD_VARIABLES = ("`INVALID_JSON`, `VALIDATION_ERROR` (`details.field_errors`) or `INVALID_VARIABLES` "
                  "(`variables` not an object, or too large)")
_NOT_ACTIVE = "`{}`: the job is not active; `details.current_status` and `details.reason` say why"
_TOO_MANY_WAITERS = ("`TOO_MANY_WAITERS`: `LONG_POLL_MAX_WAITERS` requests already wait in this web process; "
                     "retry after `Retry-After` seconds")


def _sent(data):
    body = json.dumps({"success": True, "data": data, "request_id": g.get("request_id")}, separators=(",", ":"))
    return current_app.response_class(body, mimetype="application/json")
from app.engine import process_routes as _process_routes  # noqa: F401  (processes, instances, incidents)


@bp.post("/jobs/activate")
@require_key("job")
@bp.arguments(s.ActivateRequest)
@bp.response(200, envelope(s.ActivateResult))
@bp.alt_response(503, description=_TOO_MANY_WAITERS)
def activate_jobs(args):
    """Activate jobs of a type for a worker, long-polling when none is activatable.

    With no activatable job the request waits until one appears (woken by a notification, not by
    polling the database) or until its wait ends, then answers — an empty `jobs` list is a normal
    answer. The wait is `request_timeout` (ms) if given, else the job `timeout`, and never longer
    than the `LONG_POLL_MAX_MS` setting (default 25 s, below the 30 s of Heroku-style routers).
    Each activated job's deadline is now + `timeout`; a job not completed by then becomes
    activatable again. Past `LONG_POLL_MAX_WAITERS` waiting requests in one web process the answer
    is 503 `TOO_MANY_WAITERS` with `Retry-After`."""
    wait = args["request_timeout"] if args["request_timeout"] is not None else args["timeout"]
    found = waiting.activate(tenant=g.api_key.tenant, job_type=args["type"], worker=args["worker"],
                             max_jobs=args["max_jobs"], timeout_ms=args["timeout"],
                             fetch_variables=args["fetch_variables"], wait_ms=wait)
    return _sent({"jobs": found, "worker": args["worker"], "activated_count": len(found), "timeout": args["timeout"]})


@bp.put("/jobs/<job:job_key>/complete")
@require_key("job")
@bp.arguments(s.CompleteRequest)
@bp.response(200, envelope(s.CompleteResult))
@bp.alt_response(400, description=_BAD_VARIABLES)
@bp.alt_response(404, description=_JOB_NOT_FOUND)
@bp.alt_response(409, description=_NOT_ACTIVE.format("JOB_NOT_COMPLETABLE"))
@bp.alt_response(503, description="`INSTANCE_BUSY`: the job's rows stayed locked by another transaction past "
                                  "`COMPLETION_LOCK_TIMEOUT_MS`; nothing was written, retry after `Retry-After`")
def complete_job(args, job_key):
    """Complete an active job with result variables (merged into the instance; a key sent as null is removed).

    The process moves on: `process_continuation.next_activities` names the elements it entered.
    409 `JOB_NOT_COMPLETABLE` when the job is not active (cancelled, completed, failed, timed out),
    404 `JOB_NOT_FOUND` when it is unknown or held by another `worker` than the one given."""
    return _sent(completion.complete(tenant=g.api_key.tenant, key=job_key, worker=args["worker"],
                                     variables=args["variables"], received_at=received_at()))


@bp.put("/jobs/<job:job_key>/fail")
@require_key("job")
@bp.arguments(s.FailRequest)
@bp.response(200, envelope(s.FailResult))
@bp.alt_response(404, description=_JOB_NOT_FOUND)
@bp.alt_response(409, description=_NOT_ACTIVE.format("JOB_NOT_FAILABLE"))
def fail_job(args, job_key):
    """Report a failed attempt. `retries` is what remains (omitted: one fewer than before).

    With retries left the job is activatable again after `retry_backoff_ms` (default exponential:
    2 s × 2^retries used, capped at 60 s), history `JOB_FAILED_RETRY`; with none it is `FAILED`,
    history `JOB_FAILED_FINAL`, and a `JOB_FAILURE` incident opens. Long messages are truncated."""
    return ok(jobs.fail(tenant=g.api_key.tenant, key=job_key, **args))


@bp.post("/jobs/<job:job_key>/throw-error")
@require_key("job")
@bp.arguments(s.ThrowErrorRequest)
@bp.response(200, envelope(s.ThrowErrorResult))
@bp.alt_response(400, description=_BAD_VARIABLES)
@bp.alt_response(404, description=_JOB_NOT_FOUND)
@bp.alt_response(409, description=_NOT_ACTIVE.format("JOB_NOT_COMPLETABLE"))
def throw_error(args, job_key):
    """Throw a BPMN error: a matching error boundary event on the task catches it and the instance
    continues there; otherwise an `UNHANDLED_ERROR_EVENT` incident opens."""
    return ok(jobs.throw_error(tenant=g.api_key.tenant, key=job_key, **args))


@bp.get("/jobs/<job:job_key>")
@require_key("job")
@bp.response(200, envelope(s.JobDetail))
@bp.alt_response(404, description="`JOB_NOT_FOUND`: no such job in the key's tenant")
def get_job(job_key):
    """Every field of the spec for active, completed and failed jobs (derived figures: see the README)."""
    return ok(present.job_detail(tenant=g.api_key.tenant, key=job_key))


@bp.patch("/jobs/<job:job_key>")
@require_key("job")
@bp.arguments(s.UpdateJobRequest)
@bp.response(200, envelope(s.JobDetail))
@bp.alt_response(404, description="`JOB_NOT_FOUND`: no such job in the key's tenant")
@bp.alt_response(409, description="`JOB_NOT_UPDATABLE`: the job is not active (a timeout) or has ended (retries)")
def update_job(args, job_key):
    """Extend an active job's deadline (`timeout`: new deadline = now + timeout) or set its retries."""
    jobs.update_job(tenant=g.api_key.tenant, key=job_key, **args)
    return ok(present.job_detail(tenant=g.api_key.tenant, key=job_key))


@bp.get("/jobs")
@require_key("job")
@bp.arguments(s.JobListQuery, location="query")
@bp.response(200, envelope(s.JobList))
def list_jobs(args):
    """Jobs of this key's tenant, newest first; filter by type, status, worker, process_instance_id.
    Pagination is by keyset (`cursor` = the previous page's `next_cursor`), so deep pages stay fast."""
    return ok(present.list_jobs(tenant=g.api_key.tenant, **args))


@bp.get("/jobs/stats")
@require_key("job")
@bp.response(200, envelope(s.Stats))
def job_stats():
    """Per job type: counts by status, backlog and its oldest age, in flight, in backoff, open incidents,
    workers seen in the last 5 minutes with their last poll (`null` while Redis, which keeps the polls,
    cannot be reached), completions per minute, mean activation wait and processing time over the last
    5 minutes."""
    return ok(stats.job_stats(tenant=g.api_key.tenant))


@bp.record_once
def _register_timeout_sweeper(state):
    state.app.extensions.setdefault("conveyor_worker_hooks", []).append(sweeper.start)
