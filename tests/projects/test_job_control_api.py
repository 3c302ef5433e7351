"""Cancel, retry and crash recovery of project jobs, with RQ worker processes this test owns."""
import signal
import subprocess
import time

import pytest
import redis

from tests.projects.conftest import big_csv, csv_bytes, upload, wait_for

ROWS = [("FT-1", "Flow", "AI", "m3/h", 0, 10, 300), ("PT-2", "Pressure", "AI", "bar", 0, 16, 300)]
BIG = 300_000


def _children(pid) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def _records(client, headers, project_id):
    return client.get(f"/api/projects/{project_id}/records", headers=headers).get_json()["total"]


def _staged_rows(job_id):
    from sqlalchemy import func, select

    from app.extensions import db
    from app.projects.models import ImportRow
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(ImportRow).where(ImportRow.job_id == job_id))


def _wait_running(client, headers, job_id, progress_above=0, timeout=60):
    job = wait_for(client, headers, job_id, statuses=("Running", "Completed", "Failed", "Cancelled"), timeout=timeout)
    deadline = time.monotonic() + timeout
    while job["status"] == "Running" and job["progress"] <= progress_above and time.monotonic() < deadline:
        job = wait_for(client, headers, job_id, statuses=("Running", "Completed", "Failed", "Cancelled"))
    assert job["status"] == "Running", f"{job['status']}: {job.get('error')}"
    return job


def test_cancelling_a_queued_job_cancels_it_at_once_and_no_worker_runs_it(client, owner, make_project,
                                                                          private_redis, own_worker):
    project = make_project()
    job = upload(client, owner["headers"], project["id"], csv_bytes(ROWS)).get_json()
    assert redis.Redis.from_url(private_redis).llen("rq:queue:import") == 1
    res = client.post(f"/api/jobs/{job['id']}/cancel", headers=owner["headers"])
    assert res.status_code == 200
    body = res.get_json()
    assert body["status"] == "Cancelled" and body["completedAt"] and body["id"] == job["id"]
    assert redis.Redis.from_url(private_redis).llen("rq:queue:import") == 0
    own_worker()
    time.sleep(2.5)
    assert wait_for(client, owner["headers"], job["id"])["status"] == "Cancelled"
    assert _records(client, owner["headers"], project["id"]) == 0
    assert _staged_rows(job["id"]) == 0  # the reconciler discarded what the dead worker had staged
    retried = client.post(f"/api/jobs/{job['id']}/retry", headers=owner["headers"]).get_json()
    assert retried["status"] == "Queued"
    done = wait_for(client, owner["headers"], job["id"])
    assert done["status"] == "Completed" and done["result"]["recordsCreated"] == 2


@pytest.mark.slow
def test_cancelling_a_running_import_ends_it_cancelled_within_two_seconds_and_changes_no_record(
        client, owner, make_project, own_worker):
    project = make_project()
    own_worker()
    first = upload(client, owner["headers"], project["id"], csv_bytes(ROWS)).get_json()
    wait_for(client, owner["headers"], first["id"])
    job = upload(client, owner["headers"], project["id"], big_csv(BIG)).get_json()
    running = _wait_running(client, owner["headers"], job["id"], progress_above=0)
    assert 0 < running["progress"] < 100
    started = time.monotonic()
    res = client.post(f"/api/jobs/{job['id']}/cancel", headers=owner["headers"])
    final = wait_for(client, owner["headers"], job["id"], timeout=5)
    elapsed = time.monotonic() - started
    assert res.status_code == 200 and final["status"] == "Cancelled", final
    assert elapsed < 2.0, f"took {elapsed:.2f} s"
    assert _records(client, owner["headers"], project["id"]) == 2
    assert _staged_rows(job["id"]) == 0


@pytest.mark.slow
def test_a_worker_killed_mid_import_leaves_the_job_failed_saying_the_worker_died(client, owner, make_project,
                                                                                 own_worker):
    project = make_project()
    doomed = own_worker("doomed")
    job = upload(client, owner["headers"], project["id"], big_csv(BIG)).get_json()
    _wait_running(client, owner["headers"], job["id"])
    children = _children(doomed.proc.pid)  # its work horse (a process group of its own) and scheduler
    assert children, "the worker has no work horse"
    killed_at = time.monotonic()
    doomed.stop(signal.SIGKILL)  # the worker's process group; RQ's horse is not in it
    while any(_alive(pid) for pid in children):  # the kernel kills them with their parent
        assert time.monotonic() - killed_at < 3, f"a child of the killed worker lives on: {children}"
        time.sleep(0.05)
    own_worker("survivor")
    final = wait_for(client, owner["headers"], job["id"], timeout=30)
    assert final["status"] == "Failed" and "worker" in final["error"] and "died" in final["error"], final
    assert time.monotonic() - killed_at < 15
    assert _records(client, owner["headers"], project["id"]) == 0
    assert _staged_rows(job["id"]) == 0  # the reconciler discarded what the dead worker had staged
    retried = client.post(f"/api/jobs/{job['id']}/retry", headers=owner["headers"])
    assert retried.status_code == 200 and retried.get_json()["status"] == "Queued"
    _wait_running(client, owner["headers"], job["id"])  # the survivor takes it up again
    assert client.post(f"/api/jobs/{job['id']}/cancel", headers=owner["headers"]).get_json()["status"] == "Cancelled"


def test_a_runner_from_an_earlier_attempt_cannot_touch_the_retried_job(app, owner, make_project):
    """A work horse that outlived its worker (the reconciler failed its job, the user retried it, a
    new worker began it) must not cancel, fail, reschedule or report progress on the new attempt."""
    from app.extensions import db
    from app.projects import jobs
    from app.projects.models import Job

    job = Job(project_id=make_project()["id"], type="import", status="Queued", params={}, created_by=owner["id"],
              rq_job_id="attempt-1")
    db.session.add(job)
    db.session.commit()
    job_id = job.id
    assert jobs.begin(job_id=job_id, rq_job_id="attempt-1", worker_name="doomed") is not None
    assert jobs.mark(job_id=job_id, status="Failed", error="worker died", attempt="attempt-1") is not None
    row = db.session.get(Job, job_id)
    row.status, row.rq_job_id = "Queued", "attempt-2"  # what a retry does
    db.session.commit()
    assert jobs.begin(job_id=job_id, rq_job_id="attempt-2", worker_name="survivor") is not None

    assert jobs.set_progress(job_id=job_id, percent=40, attempt="attempt-1") is True  # the old horse stops
    assert jobs.cancel_requested(job_id, attempt="attempt-1") is True
    assert jobs.mark(job_id=job_id, status="Cancelled", attempt="attempt-1") is None
    jobs.schedule_retry(job_id=job_id, error="busy", delay=5, attempt="attempt-1")
    db.session.remove()
    row = db.session.get(Job, job_id)
    assert (row.status, row.progress, row.retry_at, row.worker_name) == ("Running", 0, None, "survivor")

    assert jobs.set_progress(job_id=job_id, percent=40, attempt="attempt-2") is False  # the new one goes on
    assert jobs.cancel_requested(job_id, attempt="attempt-2") is False
    assert jobs.mark(job_id=job_id, status="Cancelled", attempt="attempt-2") is not None
    db.session.remove()
    assert db.session.get(Job, job_id).status == "Cancelled"
