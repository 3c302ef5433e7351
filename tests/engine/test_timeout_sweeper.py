"""Timed-out jobs are released by the RQ worker's sweeper, with nobody polling for them."""
import time

import pytest

from app.extensions import db
from tests.engine.helpers import Api, one_task


def _wait_for(check, seconds=30.0):  # the worker process may still be starting
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        db.session.remove()  # the test shares one app context: end its read snapshot (SQLite WAL)
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


@pytest.mark.slow
def test_the_worker_process_releases_a_timed_out_job_so_get_and_stats_show_it(client, key_headers, rq_worker):
    api = Api(client, key_headers)
    api.deploy(one_task())
    api.start("one")
    job = api.activate("work", worker="slow", timeout=1000)[0]

    def released():
        status, body = api.job(job["key"])
        return body["data"] if body["data"]["status"] == "ACTIVATABLE" else None

    detail = _wait_for(released)
    actions = [h["action"] for h in detail["execution_history"]]
    assert actions == ["JOB_CREATED", "JOB_ACTIVATED", "JOB_TIMED_OUT"]
    assert detail["retry_configuration"]["retries"] == 3  # no retry spent
    stats = api.call("get", "/api/v1/jobs/stats")[1]["data"]
    work = next(t for t in stats["types"] if t["type"] == "work")
    assert work["counts"]["ACTIVATABLE"] == 1 and work["counts"]["ACTIVE"] == 0 and work["backlog"] == 1
    assert work["in_flight"] == 0

    status, body = api.complete(job["key"], worker="slow")
    assert status == 409 and body["error"]["details"]["current_status"] == "TIMED_OUT"

    again = api.activate("work", worker="fast")
    assert [j["key"] for j in again] == [job["key"]]
    assert api.complete(job["key"], worker="fast")[0] == 200
    actions = [h["action"] for h in api.job(job["key"])[1]["data"]["execution_history"]]
    assert actions == ["JOB_CREATED", "JOB_ACTIVATED", "JOB_TIMED_OUT", "JOB_ACTIVATED", "JOB_COMPLETED"]
