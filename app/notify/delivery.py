"""Sending webhook deliveries: the RQ task (queue "webhooks"), its retries, and the sweep that recovers lost ones.

A delivery is claimed in a short transaction, sent with no database connection held, and its
attempt recorded in a second transaction. Retries are new RQ jobs scheduled from the delivery row,
so the row — not Redis — is the truth: the worker's sweep re-enqueues pending rows whose RQ job was
lost (Redis restart) or whose attempt never finished (worker crash; the claim expires).
"""
import http.client
import json
import logging
import threading
import time
from contextlib import nullcontext
from datetime import timedelta
from email.utils import parsedate_to_datetime

from flask import current_app, has_app_context
from rq.job import Job, JobStatus
from sqlalchemy import or_, select, update

from app import clock, dbsetup
from app.extensions import db, get_queue, get_redis
from app.fork_gate import worker_pass
from app.notify import outbox, shapes, signing, urls
from app.notify.events import Event
from app.notify.models import Attempt, Delivery, Webhook

log = logging.getLogger("conveyor.webhooks")
TIMEOUT_S = 10
RETRY_DELAYS_S = (10, 60, 300)       # three retries, further and further apart
DISABLE_AFTER = 5                    # deliveries in a row that failed for good
CLAIM_S = 45                         # longer than one attempt can take
SWEEP_EVERY_S = 15
DRAIN_S = 5.0                        # how long one task keeps sending other due deliveries
EARLY_S = 1                          # how far ahead of its time a delivery may be sent
_LIVE = (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


def rq_job_id(delivery_id: int, attempts: int) -> str:
    return f"whd-{delivery_id}-{attempts}"


def enqueue(connection, delivery_id: int, attempts: int, due=None) -> None:
    queue = get_queue("webhooks", connection)
    options = dict(job_id=rq_job_id(delivery_id, attempts), result_ttl=300, job_timeout=CLAIM_S)
    if due is not None and due > clock.utcnow() + timedelta(milliseconds=200):
        queue.enqueue_at(due, deliver, delivery_id, **options)
    else:
        queue.enqueue(deliver, delivery_id, **options)


def deliver(delivery_id: int) -> str:
    """The RQ task. Safe to run twice: only the run that claims the pending row sends.

    It then drains other due deliveries for a moment: each RQ job costs a fork, so under a burst the
    tasks already queued for those rows find them sent and end at once."""
    context = nullcontext() if has_app_context() else _new_app().app_context()
    with context:
        try:
            outcome = _deliver(delivery_id)
            _drain(time.monotonic() + current_app.config.get("WEBHOOK_DRAIN_S", DRAIN_S))
            return outcome
        finally:
            db.session.remove()


def _free_and_pending(now) -> tuple:
    """Pending, and not claimed by a sender (or its claim has lapsed): each caller adds when it is due."""
    return Delivery.status == "pending", or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now)


def _drain(until: float) -> None:
    while time.monotonic() < until:
        now = clock.utcnow()
        due = db.session.scalars(select(Delivery.id).where(*_free_and_pending(now), Delivery.next_attempt_at <= now)
                                 .order_by(Delivery.id).limit(20)).all()
        db.session.commit()
        if not due:
            return
        for delivery_id in due:
            if time.monotonic() >= until:
                return
            _deliver(delivery_id)


def _new_app():
    from app import create_app
    return create_app()


def _deliver(delivery_id: int) -> str:
    d = db.session.get(Delivery, delivery_id)
    if d is not None and d.event_type != "progress" and d.job_id is not None:
        waiting = db.session.scalars(select(Delivery.id).where(
            Delivery.webhook_id == d.webhook_id, Delivery.job_id == d.job_id, Delivery.event_type == "progress",
            Delivery.status == "pending", Delivery.attempts == 0, Delivery.id < d.id)).all()
        for progress_id in waiting:  # progress first, so the end arrives last
            _send(progress_id)
    return _send(delivery_id)  # each send's claim ends the read first (_claim)


def _send(delivery_id: int) -> str:
    prepared = _claim(delivery_id)
    if isinstance(prepared, str):
        return prepared
    url, body, headers, attempt_no = prepared
    status, error, retry_after, started = None, None, None, time.perf_counter()
    try:
        res = urls.post(url, body, headers, timeout=current_app.config.get("WEBHOOK_TIMEOUT_S", TIMEOUT_S),
                        allow_private=current_app.config["ALLOW_PRIVATE_WEBHOOKS"])
        status, retry_after = res.status, res.headers.get("retry-after")
        if not 200 <= status < 300:
            error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    except urls.UnsafeURL as exc:
        error = f"Refused: {exc}"
    except (OSError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500] or "network error"
    duration = int((time.perf_counter() - started) * 1000)
    return _record(delivery_id, attempt_no, status, error, duration, retry_after)


def _claim(delivery_id: int):
    # The claim must begin its transaction (SQLite: a read left open, say by reloading an expired row after
    # the last send, could not turn into this write if another process committed meanwhile).
    dbsetup.end_read(db.session)
    now = clock.utcnow()
    # Due, too: a task left over from an earlier attempt (another task's drain sent that one) must not
    # send the retry before its backoff. EARLY_S covers tasks enqueued at once for a time just ahead.
    claimed = db.session.execute(update(Delivery).where(
        Delivery.id == delivery_id, *_free_and_pending(now),
        Delivery.next_attempt_at <= now + timedelta(seconds=EARLY_S))
        .values(claimed_until=now + timedelta(seconds=CLAIM_S))).rowcount
    if claimed != 1:
        db.session.commit()
        return "not pending or not due"
    d = db.session.get(Delivery, delivery_id)
    hook = db.session.get(Webhook, d.webhook_id)
    ev = db.session.get(Event, d.event_id)
    if not hook.active or ev is None or ev.type not in shapes.KINDS:
        d.status, d.completed_at, d.claimed_until = "skipped", now, None
        d.last_error = "Webhook is disabled" if ev is not None and not hook.active else "No such job event"
        db.session.commit()
        return "skipped"
    body = json.dumps(shapes.webhook_payload(ev.type, ev.payload, ev.user_id, ev.subject),
                      separators=(",", ":"), default=str).encode()
    secret = signing.decrypt(current_app.config["WEBHOOK_SECRET_KEY"], hook.secret_encrypted)
    prepared = (hook.url, body, signing.headers(secret, f"evt_{ev.id}", body), d.attempts + 1)
    db.session.commit()  # no connection is held while the receiver answers
    return prepared


def _retry_delay(attempt_no: int, retry_after: str | None) -> float:
    delays = current_app.config.get("WEBHOOK_RETRY_DELAYS_S", RETRY_DELAYS_S)
    delay = float(delays[min(attempt_no - 1, len(delays) - 1)])
    if retry_after:
        try:
            delay = float(int(retry_after))
        except ValueError:
            try:
                delay = (parsedate_to_datetime(retry_after) - clock.utcnow()).total_seconds()
            except (TypeError, ValueError):
                pass  # an unreadable Retry-After leaves our own schedule in place
    return min(max(delay, 1.0), 3600.0)


def _record(delivery_id, attempt_no, status, error, duration, retry_after) -> str:
    now = clock.utcnow()
    with dbsetup.write(db.session):  # reads the delivery, then writes: the lock at BEGIN on SQLite
        d = db.session.get(Delivery, delivery_id)
        hook = db.session.get(Webhook, d.webhook_id)
        db.session.add(Attempt(delivery_id=d.id, number=attempt_no, status_code=status, duration_ms=duration,
                               error=error, created_at=now))
        d.attempts, d.claimed_until, d.last_status_code, d.last_error = attempt_no, None, status, error
        retries = len(current_app.config.get("WEBHOOK_RETRY_DELAYS_S", RETRY_DELAYS_S))
        if error is None:
            d.status, d.completed_at = "succeeded", now
            hook.consecutive_failures = 0
        elif status == 410:
            d.status, d.completed_at = "failed", now
            _disable(hook, "The receiver answered 410 Gone", now)
        elif attempt_no <= retries:
            d.next_attempt_at = now + timedelta(seconds=_retry_delay(attempt_no, retry_after))
            outbox.requeue(d)
        else:
            d.status, d.completed_at = "failed", now
            hook.consecutive_failures = (hook.consecutive_failures or 0) + 1
            limit = current_app.config.get("WEBHOOK_DISABLE_AFTER", DISABLE_AFTER)
            if hook.consecutive_failures >= limit:
                _disable(hook, f"{hook.consecutive_failures} deliveries in a row failed after every retry; "
                               f"last: {error}", now)
        outcome = d.status
    return outcome


def _disable(hook: Webhook, reason: str, now) -> None:
    hook.active, hook.disabled_reason, hook.updated_at = False, reason[:500], now
    log.warning({"event": "webhook_disabled", "webhook_id": hook.id, "reason": reason})


def sweep(connection) -> int:
    """Enqueue again every pending delivery that is overdue and has no live RQ job."""
    now = clock.utcnow()
    rows = db.session.execute(select(Delivery.id, Delivery.attempts, Delivery.next_attempt_at).where(
        *_free_and_pending(now), Delivery.next_attempt_at < now - timedelta(seconds=SWEEP_EVERY_S)).limit(500)).all()
    db.session.commit()
    requeued = 0
    for delivery_id, attempts, _ in rows:
        job_id = rq_job_id(delivery_id, attempts)
        if Job.exists(job_id, connection):
            try:
                if Job.fetch(job_id, connection=connection).get_status() in _LIVE:
                    continue
            except Exception:  # an unreadable job hash counts as lost
                log.warning("webhook job %s unreadable; enqueueing again", job_id)
        enqueue(connection, delivery_id, attempts)
        requeued += 1
    if requeued:
        log.info({"event": "webhook_sweep", "requeued": requeued})
    return requeued


def start_sweeper(app, worker=None) -> threading.Thread:
    """A daemon thread in the worker process (registered in `conveyor_worker_hooks`)."""
    def loop():
        while True:
            time.sleep(app.config.get("WEBHOOK_SWEEP_EVERY_S", SWEEP_EVERY_S))
            with worker_pass(app, log, "webhook sweep failed"):  # the next round retries what failed here
                sweep(get_redis())
    thread = threading.Thread(target=loop, name="webhook-sweeper", daemon=True)
    thread.start()
    return thread
