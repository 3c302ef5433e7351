"""Cancel, retry and crash recovery of project jobs, with RQ worker processes this test owns."""
import signal
import time

import pytest
import redis

from tests.projects.conftest import big_csv, csv_bytes, upload, wait_for

ROWS = [("FT-1", "Flow", "AI", "m3/h", 0, 10, 300), ("PT-2", "Pressure", "AI", "bar", 0, 16, 300)]
BIG = 300_000


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
    assert job["status"] == "Running", job
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
    killed_at = time.monotonic()
    doomed.stop(signal.SIGKILL)  # the whole process group: the worker and its work horse
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
