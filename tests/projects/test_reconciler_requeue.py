"""A Queued job that RQ will never run is enqueued again by the reconciler: one whose RQ job is gone
(Redis flushed or lost), and one whose retry RQ still holds as scheduled long after it was due (no
scheduler is moving it). A job RQ is still going to run is left alone. No worker runs here: the
test looks at what the reconciler leaves on RQ's queue."""
from datetime import timedelta

import redis
from rq import Queue
from rq.job import Job as RQJob, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import update

from app import clock
from app.auth.models import User
from app.extensions import db, get_redis
from app.projects import jobs, reconcile
from app.projects.models import Job, Project


def _queued(owner, project, *, created_ago_s=300, retry_ago_s=None) -> tuple[str, str]:
    """A job Queued since `created_ago_s`: (its id, its RQ job's id)."""
    db.session.remove()
    job = jobs.start_job(name="Validation", user=db.session.get(User, owner["id"]),
                         project=db.session.get(Project, project["id"]))
    now = clock.utcnow()
    retry_at = None if retry_ago_s is None else now - timedelta(seconds=retry_ago_s)
    db.session.execute(update(Job).where(Job.id == job.id).values(
        created_at=now - timedelta(seconds=created_ago_s), retry_at=retry_at))
    db.session.commit()
    return job.id, job.rq_job_id


def _scheduled(rq_job_id: str, due_ago_s: float) -> None:
    """What RQ holds for a job waiting on a retry interval (as `Job.retry` leaves it): off the queue,
    scheduled, in the scheduled registry."""
    rq_job = RQJob.fetch(rq_job_id, connection=get_redis(), serializer=JSONSerializer)
    queue = Queue(rq_job.origin, connection=get_redis(), serializer=JSONSerializer)
    queue.remove(rq_job)
    rq_job.set_status(JobStatus.SCHEDULED)
    queue.schedule_job(rq_job, clock.utcnow() - timedelta(seconds=due_ago_s))


def _on_queue(name: str) -> list[str]:
    return Queue(name, connection=get_redis(), serializer=JSONSerializer).job_ids


def _reconcile() -> dict:
    return reconcile.reconcile_once(get_redis(), grace=1)  # acts on what is 30 s overdue or more


def _rq_job_of(job_id: str) -> str:
    db.session.remove()
    job = db.session.get(Job, job_id)
    assert job.status == "Queued"
    return job.rq_job_id


def test_a_queued_job_whose_rq_job_was_lost_is_enqueued_again(owner, make_project, private_redis):
    job_id, lost = _queued(owner, make_project())
    redis.Redis.from_url(private_redis).flushdb()  # Redis lost everything it held
    assert _reconcile()["requeued"] == [job_id]
    again = _rq_job_of(job_id)
    assert again != lost and _on_queue("validation") == [again]


def test_a_retry_still_scheduled_long_after_it_was_due_is_enqueued_again(owner, make_project, private_redis):
    job_id, stuck = _queued(owner, make_project(), retry_ago_s=120)
    _scheduled(stuck, due_ago_s=120)
    assert _on_queue("validation") == []
    assert _reconcile()["requeued"] == [job_id]
    again = _rq_job_of(job_id)
    assert again != stuck and _on_queue("validation") == [again]


def test_jobs_rq_will_still_run_are_left_alone(owner, make_project, private_redis):
    _, on_the_queue = _queued(owner, make_project())
    _, retry_just_due = _queued(owner, make_project(name="Second"), retry_ago_s=5)
    _scheduled(retry_just_due, due_ago_s=5)
    assert _reconcile()["requeued"] == []
    assert _on_queue("validation") == [on_the_queue]
