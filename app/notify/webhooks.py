"""Webhooks of a user: create (the secret is shown once), list, update, delete, the delivery log, redeliver."""
from flask import current_app
from sqlalchemy import func, select

from app import clock
from app.errors import AppError, Conflict, NotFound, ValidationError
from app.extensions import db
from app.notify import outbox, signing, urls
from app.notify.models import Attempt, Delivery, Webhook

MAX_WEBHOOKS_PER_USER = 20


class WebhookNotFound(NotFound):
    code, message = "WEBHOOK_NOT_FOUND", "No such webhook"


class DeliveryNotFound(NotFound):
    code, message = "DELIVERY_NOT_FOUND", "No such delivery"


class TooManyWebhooks(AppError):
    status, code, message = 409, "WEBHOOK_LIMIT_REACHED", "Too many webhooks"


def to_dict(hook: Webhook) -> dict:
    return {"id": hook.id, "url": hook.url, "eventType": hook.event_type, "description": hook.description,
            "active": hook.active, "disabledReason": hook.disabled_reason,
            "consecutiveFailures": hook.consecutive_failures,
            "createdAt": clock.iso(hook.created_at), "updatedAt": clock.iso(hook.updated_at)}


def check_url(url: str) -> str:
    try:
        urls.resolve(url, allow_private=current_app.config["ALLOW_PRIVATE_WEBHOOKS"])
    except urls.UnsafeURL as exc:
        raise ValidationError({"url": str(exc)}) from None
    return url.strip()


def _new_webhook(*, user_id: int, url: str, event_type: str, description: str = "", job_id=None):
    secret = signing.new_secret()
    now = clock.utcnow()
    hook = Webhook(user_id=user_id, url=check_url(url), event_type=event_type, description=description or "",
                   active=True, job_id=job_id, consecutive_failures=0, created_at=now, updated_at=now,
                   secret_encrypted=signing.encrypt(current_app.config["WEBHOOK_SECRET_KEY"], secret))
    db.session.add(hook)
    return hook, secret


def create(*, user, url: str, event_type: str, description: str = "") -> dict:
    count = db.session.scalar(select(func.count(Webhook.id)).where(Webhook.user_id == user.id,
                                                                   Webhook.job_id.is_(None)))
    cap = current_app.config.get("WEBHOOKS_PER_USER", MAX_WEBHOOKS_PER_USER)
    if count >= cap:
        raise TooManyWebhooks(f"At most {cap} webhooks per user", {"limit": cap})
    hook, secret = _new_webhook(user_id=user.id, url=url, event_type=event_type, description=description)
    db.session.commit()
    return {**to_dict(hook), "secret": secret}


def list_for(*, user) -> list[Webhook]:
    return db.session.scalars(select(Webhook).where(Webhook.user_id == user.id, Webhook.job_id.is_(None))
                              .order_by(Webhook.id)).all()


def get_or_404(*, user, webhook_id: int) -> Webhook:
    hook = db.session.get(Webhook, webhook_id)
    if hook is None or hook.user_id != user.id or hook.job_id is not None:
        raise WebhookNotFound(details={"id": webhook_id})
    return hook


def update(*, user, webhook_id: int, changes: dict) -> Webhook:
    hook = get_or_404(user=user, webhook_id=webhook_id)
    if "url" in changes:
        hook.url = check_url(changes["url"])
    if "eventType" in changes:
        hook.event_type = changes["eventType"]
    if "description" in changes:
        hook.description = changes["description"] or ""
    if "active" in changes:
        hook.active = changes["active"]
        if hook.active:  # switched back on by its owner: start counting failures afresh
            hook.disabled_reason, hook.consecutive_failures = None, 0
    hook.updated_at = clock.utcnow()
    db.session.commit()
    return hook


def delete(*, user, webhook_id: int) -> None:
    db.session.delete(get_or_404(user=user, webhook_id=webhook_id))
    db.session.commit()


def create_legacy(*, user_id: int, job_id: str, url: str) -> None:
    """The per-job `webhookUrl` of /submit-job: it hears that job's completion (signed like any other)."""
    hook, _ = _new_webhook(user_id=user_id, url=url, event_type="completed", job_id=job_id)
    db.session.commit()
    _catch_up(hook)


def _catch_up(hook: Webhook) -> None:
    # A fast job may have completed before this webhook existed: deliver what it missed.
    from app.notify.events import Event
    ev = db.session.scalar(select(Event).where(Event.subject == hook.job_id, Event.type == "job.completed")
                           .order_by(Event.id.desc()).limit(1))
    if ev is None or db.session.scalar(select(Delivery.id).where(Delivery.webhook_id == hook.id)) is not None:
        return
    outbox.add(Delivery(webhook_id=hook.id, event_id=ev.id, job_id=hook.job_id, event_type="completed",
                        next_attempt_at=clock.utcnow(), created_at=clock.utcnow()))
    db.session.commit()


def delivery_to_dict(d: Delivery, attempts: list[Attempt]) -> dict:
    return {"id": d.id, "eventId": str(d.event_id), "webhookId": f"evt_{d.event_id}", "jobId": d.job_id,
            "eventType": d.event_type, "status": d.status, "attempts": d.attempts,
            "nextAttemptAt": clock.iso(d.next_attempt_at) if d.status == "pending" else None,
            "lastStatusCode": d.last_status_code, "lastError": d.last_error, "redeliveryOf": d.redelivery_of,
            "createdAt": clock.iso(d.created_at), "completedAt": clock.iso(d.completed_at),
            "log": [{"attempt": a.number, "statusCode": a.status_code, "durationMs": a.duration_ms,
                     "error": a.error, "at": clock.iso(a.created_at)} for a in attempts]}


def list_deliveries(*, user, webhook_id: int, page: int, limit: int) -> dict:
    hook = get_or_404(user=user, webhook_id=webhook_id)
    total = db.session.scalar(select(func.count(Delivery.id)).where(Delivery.webhook_id == hook.id))
    rows = db.session.scalars(select(Delivery).where(Delivery.webhook_id == hook.id)
                              .order_by(Delivery.id.desc()).offset((page - 1) * limit).limit(limit)).all()
    logs: dict[int, list] = {d.id: [] for d in rows}
    if rows:
        for a in db.session.scalars(select(Attempt).where(Attempt.delivery_id.in_(list(logs)))
                                    .order_by(Attempt.number)):
            logs[a.delivery_id].append(a)
    return {"deliveries": [delivery_to_dict(d, logs[d.id]) for d in rows],
            "pagination": {"total": total, "page": page, "limit": limit, "pages": -(-total // limit)}}


def redeliver(*, user, webhook_id: int, delivery_id: int) -> dict:
    hook = get_or_404(user=user, webhook_id=webhook_id)
    old = db.session.get(Delivery, delivery_id)
    if old is None or old.webhook_id != hook.id:
        raise DeliveryNotFound(details={"id": delivery_id})
    if not hook.active:
        raise Conflict("The webhook is disabled; switch it on (PUT active: true) first",
                       {"disabledReason": hook.disabled_reason}, code="WEBHOOK_DISABLED")
    new = outbox.add(Delivery(webhook_id=hook.id, event_id=old.event_id, job_id=old.job_id,
                              event_type=old.event_type, redelivery_of=old.id, next_attempt_at=clock.utcnow(),
                              created_at=clock.utcnow()))
    db.session.commit()
    return delivery_to_dict(new, [])

