"""Routes of the notifications API: job polling and submission, webhooks and their deliveries, and /ws."""
from flask import g

from app.api.notify import bp
from app.auth.guards import require_user
from app.notify import examples  # noqa: F401  (registers the example handler in web and worker)
from app.notify import jobs, webhooks
from app.notify import schemas as s
from app.notify import ws  # noqa: F401  (the /ws route)
from app.notify.delivery import start_sweeper


@bp.post("/submit-job")
@require_user()
@bp.arguments(s.SubmitJobSchema)
@bp.response(202, s.SubmittedSchema)
@bp.alt_response(400, description="Unknown job name (the message lists the known ones) or invalid input")
@bp.alt_response(413, description="`data` over 64 KiB (`PAYLOAD_TOO_LARGE`)")
@bp.alt_response(429, description="Too many submissions (`RATE_LIMITED`, with `Retry-After`)")
def submit_job(args):
    """Start a job of a registered project-less handler (`dataProcessing` is the shipped example).

    `data` becomes the job's parameters. A `webhookUrl` (legacy) receives this job's completion,
    signed like every webhook."""
    return jobs.submit(user=g.user, name=args["name"], data=args["data"], webhook_url=args.get("webhookUrl"))


@bp.get("/jobs/<string:job_id>")
@require_user()
@bp.response(200, s.JobStatusSchema)
@bp.alt_response(404, description="No such job, or not yours (`JOB_NOT_FOUND`)")
def get_job(job_id):
    """One of your jobs. States: waiting (Queued), delayed (Queued for a retry or a scheduled time),
    active (Running), completed, failed (Failed, or Cancelled with `failedReason` "Cancelled" and
    `cancelled: true`). Timestamps are epoch milliseconds."""
    return jobs.get(user=g.user, job_id=job_id)


@bp.get("/jobs")
@require_user()
@bp.arguments(s.JobPageArgsSchema, location="query")
@bp.response(200, s.JobPageSchema)
def list_jobs(args):
    """Your jobs, newest first; `limit` at most 100; `status` filters by state."""
    return jobs.list(user=g.user, page=args["page"], limit=args["limit"], status=args.get("status"))


@bp.get("/webhooks")
@require_user()
@bp.response(200, s.WebhookListSchema)
def list_webhooks():
    """Your webhooks. A webhook switched off by the system says why in `disabledReason`."""
    return {"webhooks": [webhooks.to_dict(h) for h in webhooks.list_for(user=g.user)]}


@bp.post("/webhooks")
@require_user()
@bp.arguments(s.WebhookInSchema)
@bp.response(201, s.WebhookCreatedSchema)
@bp.alt_response(409, description="20 webhooks already (`WEBHOOK_LIMIT_REACHED`)")
def create_webhook(args):
    """Create a webhook. The answer carries its `whsec_…` signing secret, shown this once.

    The URL must be http(s), carry no credentials and resolve only to public addresses (unless the
    deployment allows private targets)."""
    return webhooks.create(user=g.user, url=args["url"], event_type=args["eventType"],
                           description=args["description"])


@bp.put("/webhooks/<id:webhook_id>")
@require_user()
@bp.arguments(s.WebhookUpdateSchema)
@bp.response(200, s.WebhookSchema)
@bp.alt_response(404, description="No such webhook, or not yours (`WEBHOOK_NOT_FOUND`)")
def update_webhook(args, webhook_id):
    """Change a webhook; `active: true` switches a disabled one back on and clears its failure count."""
    return webhooks.to_dict(webhooks.update(user=g.user, webhook_id=webhook_id, changes=args))


@bp.delete("/webhooks/<id:webhook_id>")
@require_user()
@bp.response(204)
@bp.alt_response(404, description="No such webhook, or not yours (`WEBHOOK_NOT_FOUND`)")
def delete_webhook(webhook_id):
    """Delete a webhook and its delivery log."""
    webhooks.delete(user=g.user, webhook_id=webhook_id)


@bp.get("/webhooks/<id:webhook_id>/deliveries")
@require_user()
@bp.arguments(s.PageArgsSchema, location="query")
@bp.response(200, s.DeliveryListSchema)
def list_deliveries(args, webhook_id):
    """The delivery log, newest first: every attempt with its status code, duration and error."""
    return webhooks.list_deliveries(user=g.user, webhook_id=webhook_id, page=args["page"], limit=args["limit"])


@bp.post("/webhooks/<id:webhook_id>/deliveries/<id:delivery_id>/redeliver")
@require_user()
@bp.response(202, s.DeliverySchema)
@bp.alt_response(404, description="No such webhook or delivery (`WEBHOOK_NOT_FOUND`, `DELIVERY_NOT_FOUND`)")
@bp.alt_response(409, description="The webhook is disabled (`WEBHOOK_DISABLED`)")
def redeliver(webhook_id, delivery_id):
    """Send a delivery's event again, as a new delivery with the same `webhook-id`."""
    return webhooks.redeliver(user=g.user, webhook_id=webhook_id, delivery_id=delivery_id)


bp.register_blueprint(ws.ws_bp)


@bp.record_once
def _register_worker_hook(state):
    state.app.extensions.setdefault("conveyor_worker_hooks", []).append(start_sweeper)
