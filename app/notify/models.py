"""Notification tables: webhooks, their delivery outbox, and the log of every delivery attempt."""
from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.extensions import db
from app.types import UTCDateTime

EVENT_TYPES = ("progress", "completed", "failed", "all")


class Webhook(db.Model):
    __tablename__ = "webhooks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    event_type: Mapped[str] = mapped_column(String(16), nullable=False, default="all")
    description: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Fernet token of the `whsec_…` secret: it must be recoverable to sign, so it is encrypted, not hashed.
    secret_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    # Set for the legacy per-job `webhookUrl` of /submit-job: such a webhook hears only that job's completion.
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    disabled_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)
    updated_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)


class Delivery(db.Model):
    """The outbox: one row per (event, webhook), committed with the event, sent later by an RQ task."""
    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False)
    # A pending progress delivery is moved forward to the newest progress event of its job (coalescing).
    event_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), nullable=False)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    event_type: Mapped[str] = mapped_column(String(16), nullable=False)
    # pending → succeeded | failed | superseded | skipped
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at = mapped_column(UTCDateTime, nullable=True)
    claimed_until = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    redelivery_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)
    completed_at = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_webhook_deliveries_webhook_job", "webhook_id", "job_id", "event_type"),
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
    )


class Attempt(db.Model):
    """One HTTP attempt of a delivery: what the receiver answered and how long it took."""
    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True,
                                             nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)
