"""What the Workers page shows for one tenant, from the engine's services (stats, jobs, incidents, processes)."""
import json
from datetime import datetime, timedelta

from app import clock
from app.engine import deploy, incidents, instances, present, stats
from app.errors import AppError

CHART_MINUTES = 30
RECENT_JOBS = 12
RECENT_INSTANCES = 10
FAILURE_EVENTS = ("job.failed", "job.error_thrown", "job.timed_out")


def _parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def _minute(at: str | None, now: datetime) -> int | None:
    """How many whole minutes ago an ISO time was (0 = this minute), or None when outside the chart."""
    if not at:
        return None
    moment = _parse(at)
    ago = int((now.replace(second=0, microsecond=0) - moment.replace(second=0, microsecond=0))
              .total_seconds() // 60)
    return ago if 0 <= ago < CHART_MINUTES else None


def per_minute(*, tenant: str, now: datetime) -> dict:
    """Completed and failed jobs per minute over the last half hour, oldest first (from their end times)."""
    series = {"completed": [0] * CHART_MINUTES, "failed": [0] * CHART_MINUTES}
    since = now - timedelta(minutes=CHART_MINUTES)
    for status, name in (("COMPLETED", "completed"), ("FAILED", "failed"), ("ERROR_THROWN", "failed")):
        cursor = None
        for _ in range(4):  # at most 2,000 jobs of each kind: the newest are the ones this chart shows
            listing = present.list_jobs(tenant=tenant, status=status, limit=500, cursor=cursor)
            for job in listing["jobs"]:
                ago = _minute(job["ended_at"], now)
                if ago is not None:
                    series[name][CHART_MINUTES - 1 - ago] += 1
            cursor = listing["next_cursor"]
            last = listing["jobs"][-1]["created_at"] if listing["jobs"] else None
            # Pages are by creation time: a job created an hour before the chart began has ended long ago.
            if cursor is None or (last and _parse(last) < since - timedelta(hours=1)):
                break
    return {"minutes": CHART_MINUTES, "end": clock.epoch_ms(now.replace(second=0, microsecond=0)), **series}


def overview(*, tenant: str) -> dict:
    now = clock.utcnow()
    recent = present.list_jobs(tenant=tenant, limit=RECENT_JOBS)["jobs"]
    for job in recent:
        job["history"] = present.job_detail(tenant=tenant, key=job["key"]).get("execution_history", [])
    seen, recent_instances = [], []
    for job in present.list_jobs(tenant=tenant, limit=100)["jobs"]:
        key = job["process_instance_id"]
        if key and key not in seen and len(seen) < RECENT_INSTANCES:
            seen.append(key)
            try:
                recent_instances.append(instances.get(tenant=tenant, key=key))
            except AppError:
                continue
    return {
        "tenant": tenant,
        "stats": stats.job_stats(tenant=tenant),
        "chart": per_minute(tenant=tenant, now=now),
        "recent": recent,
        "instances": recent_instances,
        "incidents": [present.incident(i) for i in incidents.list_incidents(tenant=tenant, state="OPEN")],
        "processes": [present.process(p) for p in deploy.list_processes(tenant=tenant)],
    }


def chart_json(chart: dict) -> str:
    return json.dumps(chart)
