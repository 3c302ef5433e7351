"""Durable events, published after commit.

A service records an event in the same transaction as the state change it describes; once that
transaction commits, the event is published on Redis for live delivery. Redis carries the fan-out;
the `events` table is the truth that reconnecting clients and webhook delivery recover from.
"""
import json
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import BigInteger, Integer, String, event as sa_event
from sqlalchemy.orm import Mapped, Session, mapped_column

from app import clock
from app.extensions import db, get_redis
from app.notify.publisher import publisher
from app.types import JSONType, UTCDateTime

CHANNEL = "conveyor:events"

# Callables run inside record(), in the event's transaction (the webhook outbox registers here).
record_hooks: list = []


class Event(db.Model):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    tenant: Mapped[str | None] = mapped_column(String(100), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    payload: Mapped[dict] = mapped_column(JSONType, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)

    def as_message(self) -> dict:
        return {"id": str(self.id), "type": self.type, "user_id": self.user_id, "tenant": self.tenant,
                "subject": self.subject, "data": self.payload, "created_at": clock.iso(self.created_at)}


def record(type_: str, payload: dict, *, user_id=None, tenant=None, subject=None) -> Event:
    """Add an event to the current transaction; it is published only if that transaction commits."""
    ev = Event(type=type_, payload=payload, user_id=user_id, tenant=tenant, subject=subject,
               created_at=clock.utcnow())
    db.session.add(ev)
    db.session.info.setdefault("conveyor_pending_events", []).append(ev)
    for hook in record_hooks:
        hook(ev)
    return ev


# The messages of a transaction run outside the ORM session (see `kept_for_commit`).
_kept: ContextVar[list | None] = ContextVar("conveyor_kept_messages", default=None)


def publish_after_commit(channel: str, message: str) -> None:
    """A Redis message (a wake-up, not a record) sent only if the current transaction commits."""
    kept = _kept.get()
    if kept is not None:
        kept.append((channel, message))
    else:
        db.session.info.setdefault("conveyor_publish", []).append((channel, message))


@contextmanager
def kept_for_commit():
    """For a transaction outside the ORM session, whose commit the session's hook below does not see:
    the messages published inside the block are kept in the list yielded, for the caller to send once
    that transaction has committed."""
    kept: list = []
    token = _kept.set(kept)
    try:
        yield kept
    finally:
        _kept.reset(token)


@sa_event.listens_for(Session, "after_flush")
def _capture(session, flush_context):
    pending = session.info.pop("conveyor_pending_events", None)
    if pending:
        # Ids exist now; after commit the objects are expired and may not be read.
        session.info.setdefault("conveyor_publish", []).extend(
            (CHANNEL, json.dumps(ev.as_message(), default=str)) for ev in pending)


@sa_event.listens_for(Session, "after_commit")
def _publish(session):
    messages = session.info.pop("conveyor_publish", None)
    if messages:
        publisher.send(get_redis(), messages)


@sa_event.listens_for(Session, "after_rollback")
def _discard(session):
    session.info.pop("conveyor_pending_events", None)
    session.info.pop("conveyor_publish", None)
