"""Fixtures for the project jobs API: a signed-in owner, projects, files, and workers of our own."""
import csv
import io
import time

import pytest
import redis

from tests import support


@pytest.fixture
def owner(make_user, login):
    user = make_user(email="owner@example.com", name="Olivia Owner")
    return {"user": user, "id": user.id, "headers": {"Authorization": f"Bearer {login(user)['access_token']}"}}


@pytest.fixture
def make_project(client, owner):
    def make(name="Plant A Commissioning", headers=None, **extra):
        res = client.post("/api/projects", json={"name": name, **extra}, headers=headers or owner["headers"])
        assert res.status_code == 201, res.get_json()
        return res.get_json()
    return make


def csv_bytes(rows, header=("tag", "description", "type", "unit", "range_low", "range_high", "area")) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def big_csv(n: int) -> bytes:
    lines = ["tag,description,type,unit,range_low,range_high,area"]
    lines += [f"T-{i:07d},Tag number {i},AI,bar,0,{i % 500},{300 + i % 3}" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


def upload(client, headers, project_id, data: bytes, filename="tags.csv", key_field=None):
    form = {"file": (io.BytesIO(data), filename)}
    if key_field:
        form["keyField"] = key_field
    return client.post(f"/api/projects/{project_id}/imports", data=form, headers=headers,
                       content_type="multipart/form-data")


def wait_for(client, headers, job_id, statuses=("Completed", "Failed", "Cancelled"), timeout=60.0):
    from app.extensions import db
    deadline = time.monotonic() + timeout
    while True:
        # the test's app context outlives requests, so its session would keep serving a stale snapshot
        db.session.remove()
        job = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()
        if job["status"] in statuses or time.monotonic() > deadline:
            assert job["status"] in statuses, job
            return job
        time.sleep(0.05)


@pytest.fixture
def private_redis(app, redis_for_tests):
    """A Redis database of this test's own, so that only the workers this test starts take its jobs."""
    with redis_for_tests.private_db() as url:
        saved = app.extensions["redis"]
        app.extensions["redis"] = redis.Redis.from_url(url)
        try:
            yield url
        finally:
            app.extensions["redis"] = saved


@pytest.fixture
def own_worker(database_url, private_redis, tmp_path):
    """Start real `python worker.py` processes on the private Redis (reconciler every second)."""
    started = []

    def start(name="w1"):
        env = support.service_env(database_url, private_redis, PROJECT_JOBS_RECONCILE_SECONDS=1,
                                  RQ_WORKER_NAME=f"{name}-{time.time_ns()}")
        proc = support.start_worker(env, str(tmp_path / f"{name}.log"))
        started.append(proc)
        return proc
    yield start
    for proc in started:
        proc.stop()
