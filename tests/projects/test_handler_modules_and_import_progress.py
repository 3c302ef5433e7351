"""Handlers a deployment adds through JOB_HANDLER_MODULES, run by a real worker with RQ's retries; and an
import whose progress moves through its write phase while records change only when it completes."""
import time

import pytest

from tests import support
from tests.projects.conftest import big_csv, csv_bytes, upload, wait_for

MODULE = "tests.projects.handlers_for_tests"


@pytest.fixture
def web_with_handlers(app, database_url, redis_url):
    """Builds an app the way the web process does with the setting, which registers the test handlers."""
    from app import create_app
    create_app(env={"DATABASE_URL": database_url, "REDIS_URL": redis_url, "JOB_HANDLER_MODULES": MODULE})
    return app


@pytest.fixture
def worker(web_with_handlers, database_url, private_redis, tmp_path):
    env = support.service_env(database_url, private_redis, PROJECT_JOBS_RECONCILE_SECONDS=1,
                              RQ_WORKER_NAME=f"handlers-{time.time_ns()}", JOB_HANDLER_MODULES=MODULE)
    proc = support.start_worker(env, str(tmp_path / "worker.log"))
    yield proc
    proc.stop()


def _start(owner, project, name):
    from app.auth.models import User
    from app.extensions import db
    from app.projects import jobs
    from app.projects.models import Project
    db.session.remove()
    return jobs.start_job(name=name, user=db.session.get(User, owner["id"]),
                          project=db.session.get(Project, project["id"])).id


def _row(job_id):
    from app.extensions import db
    from app.projects.models import Job
    db.session.remove()
    return db.session.get(Job, job_id)


def _events(job_id, type_):
    from app.extensions import db
    from app.notify.events import Event
    db.session.remove()
    return [e.payload for e in Event.query.filter_by(subject=job_id, type=type_).order_by(Event.id)]


def _staged_rows(job_id):
    from sqlalchemy import func, select

    from app.extensions import db
    from app.projects.models import ImportRow
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(ImportRow).where(ImportRow.job_id == job_id))


def test_a_module_in_job_handler_modules_registers_its_handlers_and_a_bad_name_stops_start_up(
        web_with_handlers, database_url, redis_url):
    from app import create_app
    from app.config import ConfigError
    from app.projects import registry
    assert {"TestFlakyTwice", "TestAlwaysBusy", "TestBroken"} <= set(registry.names())
    assert registry.get("TestFlakyTwice").retry_intervals == (1, 1)
    with pytest.raises(ConfigError, match="no_such_module"):
        create_app(env={"DATABASE_URL": database_url, "REDIS_URL": redis_url,
                        "JOB_HANDLER_MODULES": f"{MODULE}, tests.projects.no_such_module"})


@pytest.mark.slow
def test_a_handler_failing_transiently_twice_waits_queued_between_attempts_and_completes_on_the_third(
        client, owner, make_project, worker):
    job_id = _start(owner, make_project(), "TestFlakyTwice")
    seen = set()
    deadline = time.monotonic() + 30
    while (job := _row(job_id)).status not in ("Completed", "Failed") and time.monotonic() < deadline:
        seen.add((job.status, job.retry_at is not None, job.attempts))
        time.sleep(0.05)
    # The row was seen waiting, Queued with a retry time, between attempts. Each wait lasts 1 s, and a
    # sample can stall that long on a loaded machine: the durable events below show both waits.
    assert ("Queued", True, 1) in seen or ("Queued", True, 2) in seen, seen
    final = wait_for(client, owner["headers"], job_id)
    assert final["status"] == "Completed" and final["result"] == {"succeededOnAttempt": 3}, final
    assert final["error"] is None and final["progress"] == 100
    assert _row(job_id).attempts == 3 and _row(job_id).retry_at is None
    waits = [p for p in _events(job_id, "job.progress") if p["status"] == "Queued"]
    assert [w["error"] for w in waits] == ["the gauge server is busy (attempt 1)",
                                           "the gauge server is busy (attempt 2)"]
    assert len(_events(job_id, "job.started")) == 3


@pytest.mark.slow
def test_a_handler_that_stays_transient_fails_after_its_retries(client, owner, make_project, worker):
    job_id = _start(owner, make_project(), "TestAlwaysBusy")
    final = wait_for(client, owner["headers"], job_id)
    assert final["status"] == "Failed", final
    assert final["error"] == "the gauge server is still busy (attempt 3)"
    assert _row(job_id).attempts == 3
    assert len(_events(job_id, "job.failed")) == 1


def test_a_handler_raising_a_plain_exception_fails_at_once_with_its_message(client, owner, make_project,
                                                                            worker):
    job_id = _start(owner, make_project(), "TestBroken")
    final = wait_for(client, owner["headers"], job_id)
    assert final["status"] == "Failed" and final["error"] == "RuntimeError: the calibration table is corrupt"
    assert _row(job_id).attempts == 1 and _row(job_id).retry_at is None
    assert [p["status"] for p in _events(job_id, "job.progress")] == []


@pytest.mark.slow
def test_a_large_import_reports_progress_through_its_write_phase_and_leaves_no_staged_rows(
        client, owner, make_project, worker):
    project = make_project()
    rows = 30_000
    job_id = upload(client, owner["headers"], project["id"], big_csv(rows)).get_json()["id"]
    polled = []
    while (job := wait_for(client, owner["headers"], job_id, statuses=("Queued", "Running", "Completed", "Failed"),
                           timeout=60))["status"] in ("Queued", "Running"):
        polled.append(job["progress"])
        time.sleep(0.1)
    assert job["status"] == "Completed", f"{job['status']}: {job['error']}"
    assert job["result"]["recordsCreated"] == rows, job["result"]
    progress = [p["progress"] for p in _events(job_id, "job.progress")]
    # Written at most every half second, so how many depends on the machine's speed: the first
    # staged chunk reports at once, and 95 says every row is staged before the merge.
    assert progress == sorted(progress), progress
    assert any(0 < p < 95 for p in progress), progress
    assert 95 in progress, progress
    assert any(0 < p < 100 for p in polled), polled
    assert _staged_rows(job_id) == 0
    # the same rows again, columns in another order: compared as JSON values, nothing changes
    header = ("area", "tag", "description", "type", "unit", "range_low", "range_high")
    again = [(300 + i % 3, f"T-{i:07d}", f"Tag number {i}", "AI", "bar", 0, i % 500) for i in range(0, rows, 6)]
    job = wait_for(client, owner["headers"],
                   upload(client, owner["headers"], project["id"], csv_bytes(again, header=header)).get_json()["id"],
                   timeout=60)
    assert (job["result"]["recordsCreated"], job["result"]["recordsUpdated"], job["result"]["recordsUnchanged"]) \
        == (0, 0, len(again)), job


def test_a_failed_import_discards_its_staged_rows_and_changes_no_record(client, owner, make_project, worker):
    from app.auth.models import User
    from app.extensions import db
    from app.projects import jobs
    from app.projects.models import Project
    project = make_project()
    first = upload(client, owner["headers"], project["id"], csv_bytes([("A-1", "one", "AI", "bar", 0, 1, 1)]))
    wait_for(client, owner["headers"], first.get_json()["id"])
    data = csv_bytes([("A-1", "changed", "AI", "bar", 0, 1, 1), ("A-2", "new", "AI", "bar", 0, 1, 1)])
    db.session.remove()
    job_id = jobs.start_job(name="TestImportThenFail", user=db.session.get(User, owner["id"]),
                            project=db.session.get(Project, project["id"]), params={"keyField": "tag"},
                            upload=("tags.csv", "text/csv", data)).id
    job = wait_for(client, owner["headers"], job_id)
    assert job["status"] == "Failed" and job["error"] == "RuntimeError: failed after staging 2 rows", job
    assert _staged_rows(job_id) == 0
    records = client.get(f"/api/projects/{project['id']}/records", headers=owner["headers"]).get_json()
    assert [(r["key"], r["data"]["description"]) for r in records["records"]] == [("A-1", "one")]
