"""Write transactions and the Redis messages they send after commit.

Every engine use case runs in one `write()` block: on SQLite it takes the write lock at BEGIN
(a deferred transaction that reads and then writes can fail with SQLITE_BUSY when another
writer got in between); on PostgreSQL rows are locked explicitly by the service.

Two channels carry messages, both published only after the transaction commits (a PUBLISH may carry
several, one per line: see `publisher.messages_in`):

- `conveyor:engine` — one compact JSON object per job state change (the durable record is the
  job history row): `{"event": "job.completed", "job_key", "job_type", "tenant",
  "process_instance_id", "worker", "at"}`; instance events use `process_instance_id` only.
  Live news only: a web process that found nobody subscribed skips them for a moment
  (`publisher.heard`, 50 ms), so a new subscriber hears every process within that time.
- `conveyor:engine:wake` — "jobs of this type are activatable (from `at_ms`)":
  `{"tenant", "job_type", "count", "at_ms"}`; only long-polling web processes listen to it.
"""
import json
from contextlib import contextmanager

from app import clock, dbsetup
from app.extensions import db, get_redis
from app.notify.events import kept_for_commit, publish_after_commit
from app.notify.publisher import publisher

EVENTS_CHANNEL = "conveyor:engine"
WAKE_CHANNEL = "conveyor:engine:wake"


def is_postgres() -> bool:
    return dbsetup.dialect() == "postgresql"


def write():
    """The engine's use cases each run in one of these (see dbsetup.write); rows are locked by the service."""
    return dbsetup.write(db.session)


@contextmanager
def write_on(conn):
    """A transaction on a SQLAlchemy Connection the caller holds, outside the ORM session (PostgreSQL:
    the completion committers', see completion_queue.py); its messages go out after it commits."""
    with kept_for_commit() as messages:
        with conn.begin():
            yield conn
    if messages:
        publisher.send(get_redis(), messages)


def job_event(event: str, *, job_key: str, job_type: str, tenant: str, instance_key: str,
              worker: str | None = None, **extra) -> None:
    if not publisher.heard(EVENTS_CHANNEL):
        return
    message = {"event": event, "job_key": job_key, "job_type": job_type, "tenant": tenant,
               "process_instance_id": instance_key, "worker": worker, "at": clock.iso(clock.utcnow()), **extra}
    publish_after_commit(EVENTS_CHANNEL, json.dumps(message, separators=(",", ":")))


def instance_event(event: str, *, tenant: str, instance_key: str, **extra) -> None:
    if not publisher.heard(EVENTS_CHANNEL):
        return
    message = {"event": event, "tenant": tenant, "process_instance_id": instance_key,
               "at": clock.iso(clock.utcnow()), **extra}
    publish_after_commit(EVENTS_CHANNEL, json.dumps(message, separators=(",", ":")))


def wake(*, tenant: str, job_type: str, count: int = 1, at=None) -> None:
    message = {"tenant": tenant, "job_type": job_type, "count": count, "at_ms": clock.epoch_ms(at) if at else 0}
    publish_after_commit(WAKE_CHANNEL, json.dumps(message, separators=(",", ":")))
