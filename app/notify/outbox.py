"""The webhook outbox: a delivery row per (event, matching webhook), written in the event's transaction.

Registered in `events.record_hooks`, so the row commits (or rolls back) with the job change it
announces; the RQ task that sends it is enqueued only after that commit. Progress is coalesced: a
progress delivery not yet attempted is moved forward to the newest progress event of its job, and
a job's progress reaches one webhook at most once per PROGRESS_MIN_INTERVAL_S; the task of a
completion or failure first sends the progress still waiting, so the end always arrives after it.
"""
import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, event as sa_event, or_, select, update
from sqlalchemy.orm import Session

from app import clock
from app.extensions import db, get_redis
from app.notify import events, shapes
from app.notify.models import Delivery, Webhook

log = logging.getLogger("conveyor.webhooks")
PROGRESS_MIN_INTERVAL_S = 1.0
_PENDING = "conveyor_deliveries"
_ENQUEUE = "conveyor_enqueue_deliveries"


def on_event(ev) -> None:
    kind = shapes.KINDS.get(ev.type)
    if kind is None or ev.user_id is None:
        return
    matches = [and_(Webhook.job_id.is_(None), Webhook.event_type.in_((kind, "all")))]
    if ev.type == "job.completed" and ev.subject:
        matches.append(Webhook.job_id == ev.subject)  # the legacy per-job webhookUrl hears completion only
    hooks = db.session.scalars(select(Webhook).where(
        Webhook.user_id == ev.user_id, Webhook.active.is_(True), or_(*matches))).all()
    if not hooks:
        return
    db.session.flush()  # the event's id, which the delivery rows name
    now = clock.utcnow()
    for hook in hooks:
        if kind == "progress":
            _add_progress(hook, ev, now)
        else:
            _supersede_progress(hook, ev.subject, now)
            add(Delivery(webhook_id=hook.id, event_id=ev.id, job_id=ev.subject, event_type=kind,
                         next_attempt_at=now, created_at=now))


def _add_progress(hook, ev, now) -> None:
    waiting = db.session.scalar(select(Delivery).where(
        Delivery.webhook_id == hook.id, Delivery.job_id == ev.subject, Delivery.event_type == "progress",
        Delivery.status == "pending", Delivery.attempts == 0).limit(1))
    if waiting is not None:
        waiting.event_id = ev.id
        return
    last = db.session.scalar(select(Delivery.created_at).where(
        Delivery.webhook_id == hook.id, Delivery.job_id == ev.subject, Delivery.event_type == "progress")
        .order_by(Delivery.id.desc()).limit(1))
    interval = timedelta(seconds=current_app.config.get("WEBHOOK_PROGRESS_INTERVAL_S", PROGRESS_MIN_INTERVAL_S))
    due = max(now, last + interval) if last is not None else now
    add(Delivery(webhook_id=hook.id, event_id=ev.id, job_id=ev.subject, event_type="progress",
                 next_attempt_at=due, created_at=now))


def _supersede_progress(hook, job_id, now) -> None:
    # The newest progress still waiting becomes due now; the completion's task sends it just before itself.
    db.session.execute(update(Delivery).where(
        Delivery.webhook_id == hook.id, Delivery.job_id == job_id, Delivery.event_type == "progress",
        Delivery.status == "pending", Delivery.attempts == 0).values(next_attempt_at=now))


def add(delivery: Delivery) -> Delivery:
    """Add a delivery to the current transaction; its RQ task is enqueued once that commits."""
    delivery.status, delivery.attempts = "pending", 0
    db.session.add(delivery)
    db.session.info.setdefault(_PENDING, []).append(delivery)
    return delivery


if on_event not in events.record_hooks:
    events.record_hooks.append(on_event)


@sa_event.listens_for(Session, "after_flush")
def _capture(session, flush_context):
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.info.setdefault(_ENQUEUE, []).extend(
            (d.id, d.attempts, d.next_attempt_at) for d in pending if d.id is not None)


@sa_event.listens_for(Session, "after_commit")
def _enqueue(session):
    items = session.info.pop(_ENQUEUE, None)
    if not items:
        return
    from app.notify import delivery
    try:
        connection = get_redis()
        for delivery_id, attempts, due in items:
            delivery.enqueue(connection, delivery_id, attempts, due)
    except Exception:  # the row is committed: the worker's sweep enqueues it again
        log.exception("enqueueing %d webhook deliveries failed", len(items))


@sa_event.listens_for(Session, "after_rollback")
def _discard(session):
    session.info.pop(_PENDING, None)
    session.info.pop(_ENQUEUE, None)


def requeue(delivery: Delivery) -> None:
    """Schedule the next attempt of a delivery once the current transaction commits."""
    db.session.info.setdefault(_PENDING, []).append(delivery)
