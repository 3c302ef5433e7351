"""What an autoscaler needs, per job type of the key's tenant.

Definitions: `backlog` — activatable now (new, retry due, or deadline passed), with
`oldest_backlog_age_ms` the wait of the longest-waiting of them; `in_flight` — activated with the
deadline still ahead; `in_backoff` — waiting for a retry delay; `completions_per_minute`,
`mean_activation_wait_ms` (created → activated) and `mean_processing_ms` (activated → completed)
over jobs completed in the last `WINDOW` (5 minutes); `workers` — those that polled for the
type in the last 5 minutes, with their last poll (kept in Redis, not in the database): `null`
while Redis cannot be reached. Every other figure comes from the database, so an autoscaler keeps
its signal through a Redis outage, and recording a poll never fails an activation.
"""
import logging
import time
from datetime import timedelta

from redis.exceptions import RedisError
from sqlalchemy import case, func, select

from app import clock
from app.engine import tx
from app.engine.models import ACTIVATABLE, ACTIVATED, COMPLETED, STATUS, Incident, Job
from app.extensions import db, get_redis

log = logging.getLogger("conveyor.engine.stats")

WINDOW = timedelta(minutes=5)
WORKER_TTL_S = 300
POLL_RESOLUTION_S = 1.0
_last_recorded: dict[tuple, float] = {}


def _workers_key(tenant: str, job_type: str) -> str:
    return f"conveyor:engine:workers:{tenant}:{job_type}"


def record_poll(tenant: str, job_type: str, worker: str) -> None:
    """Remember a worker's last poll (one pipelined round trip; stats read it).

    A web process writes it at most once per POLL_RESOLUTION_S per worker and type, so a busy
    worker does not pay a Redis round trip per request; `last_poll_at` is that much coarse."""
    now = time.monotonic()
    seen = (tenant, job_type, worker)
    if now - _last_recorded.get(seen, -POLL_RESOLUTION_S) < POLL_RESOLUTION_S:
        return
    if len(_last_recorded) > 10_000:
        _last_recorded.clear()
    _last_recorded[seen] = now
    key = _workers_key(tenant, job_type)
    pipe = get_redis().pipeline(transaction=False)
    pipe.hset(key, worker, clock.epoch_ms(clock.utcnow()))
    pipe.expire(key, WORKER_TTL_S)
    try:
        pipe.execute()
    except RedisError as exc:  # the worker still gets its jobs; the stats miss this poll
        log.warning("could not record %r's poll for %r jobs: %s", worker, job_type, exc)


def _span_ms(start, end):
    if tx.is_postgres():
        return func.extract("epoch", end - start) * 1000
    return (func.julianday(end) - func.julianday(start)) * 86400000


def job_stats(*, tenant: str) -> dict:
    now = clock.utcnow()
    since = now - WINDOW
    types: dict[str, dict] = {}

    def entry(job_type):
        return types.setdefault(job_type, {
            "type": job_type, "tenant_id": tenant, "counts": {s: 0 for s in STATUS.values()}, "backlog": 0,
            "oldest_backlog_age_ms": None, "in_flight": 0, "in_backoff": 0, "open_incidents": 0,
            "completions_per_minute": 0.0, "mean_activation_wait_ms": None, "mean_processing_ms": None,
            "workers": []})

    for job_type, state, n in db.session.execute(select(Job.type, Job.state, func.count()).where(
            Job.tenant == tenant).group_by(Job.type, Job.state)):
        entry(job_type)["counts"][STATUS[state]] = n
    due = case((Job.state == ACTIVATABLE, Job.available_at), else_=Job.deadline)
    for job_type, backlog, oldest in db.session.execute(select(Job.type, func.count(), func.min(due)).where(
            Job.tenant == tenant, Job.state.in_((ACTIVATABLE, ACTIVATED)), Job.available_at <= now)
            .group_by(Job.type)):
        e = entry(job_type)
        e["backlog"], e["oldest_backlog_age_ms"] = backlog, clock.ms_between(oldest, now)
    for job_type, state, n in db.session.execute(select(Job.type, Job.state, func.count()).where(
            Job.tenant == tenant, Job.state.in_((ACTIVATABLE, ACTIVATED)), Job.available_at > now)
            .group_by(Job.type, Job.state)):
        entry(job_type)["in_flight" if state == ACTIVATED else "in_backoff"] = n
    for job_type, n in db.session.execute(select(Incident.job_type, func.count()).where(
            Incident.tenant == tenant, Incident.state == "OPEN", Incident.job_type.is_not(None))
            .group_by(Incident.job_type)):
        entry(job_type)["open_incidents"] = n
    for job_type, n, wait, work in db.session.execute(select(
            Job.type, func.count(), func.avg(_span_ms(Job.created_at, Job.activated_at)),
            func.avg(_span_ms(Job.activated_at, Job.ended_at))).where(
            Job.tenant == tenant, Job.state == COMPLETED, Job.ended_at >= since).group_by(Job.type)):
        e = entry(job_type)
        e["completions_per_minute"] = round(n / (WINDOW.total_seconds() / 60), 2)
        e["mean_activation_wait_ms"] = round(float(wait), 1) if wait is not None else None
        e["mean_processing_ms"] = round(float(work), 1) if work is not None else None
    for job_type, workers in _workers_seen(tenant, list(types), now).items():
        types[job_type]["workers"] = workers
    return {"tenant_id": tenant, "generated_at": clock.iso(now), "window_seconds": int(WINDOW.total_seconds()),
            "types": sorted(types.values(), key=lambda t: t["type"])}


def _workers_seen(tenant: str, job_types: list[str], now) -> dict[str, list | None]:
    """Each type's workers that polled in the last WORKER_TTL_S, from Redis in one round trip; None
    for every type while Redis cannot be reached (an empty list would claim that nobody polls)."""
    cutoff = clock.epoch_ms(now) - WORKER_TTL_S * 1000
    pipe = get_redis().pipeline(transaction=False)
    for job_type in job_types:
        pipe.hgetall(_workers_key(tenant, job_type))
    try:
        polled = pipe.execute()
    except RedisError as exc:
        log.warning("stats without workers: Redis cannot be reached: %s", exc)
        return dict.fromkeys(job_types)
    return {job_type: sorted(
        ({"worker": w.decode(), "last_poll_at": clock.iso(now.fromtimestamp(int(t) / 1000, now.tzinfo))}
         for w, t in polls.items() if int(t) >= cutoff), key=lambda w: w["worker"])
        for job_type, polls in zip(job_types, polled)}
