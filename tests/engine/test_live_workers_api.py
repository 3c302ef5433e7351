"""The worker API as the Procfile runs it: gunicorn + gevent, real Redis, real database."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from tests import support
from tests.engine.helpers import one_task


def _post(base, path, headers, **kw):
    return requests.post(base + path, headers=headers, timeout=30, **kw)


def _wait_and_start(waiting_base, starting_base, headers):
    result = {}

    def wait():
        res = _post(waiting_base, "/api/v1/jobs/activate", headers,
                    json={"type": "work", "worker": "waiter", "timeout": 60000, "request_timeout": 10000})
        result["at"], result["jobs"] = time.monotonic(), res.json()["data"]["jobs"]

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)  # the waiter is parked on its notification by now
    started = time.monotonic()
    res = _post(starting_base, "/api/v1/process-instances", headers, json={"process_id": "one"})
    assert res.status_code == 201, res.text
    waiter.join(15)
    return result["jobs"], result["at"] - started, res.json()["data"]["process_instance_id"]


def test_a_waiting_worker_is_answered_as_soon_as_an_instance_starts(live_server, app, key_headers):
    assert _post(live_server, "/api/v1/processes", key_headers, data=one_task()).status_code == 201
    jobs, latency, instance = _wait_and_start(live_server, live_server, key_headers)
    assert [j["process_instance_id"] for j in jobs] == [instance]
    assert latency < 1.0


@pytest.mark.slow
def test_an_instance_started_through_one_web_process_wakes_a_worker_waiting_on_another(
        service_env, app, key_headers, tmp_path):
    first, base_a = support.start_web(service_env, str(tmp_path / "a.log"))
    try:
        second, base_b = support.start_web(service_env, str(tmp_path / "b.log"))
        try:
            assert _post(base_b, "/api/v1/processes", key_headers, data=one_task()).status_code == 201
            jobs, latency, instance = _wait_and_start(base_a, base_b, key_headers)
            assert [j["process_instance_id"] for j in jobs] == [instance]
            assert latency < 1.0
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.mark.slow
def test_sixteen_long_polling_workers_activate_two_thousand_jobs_exactly_once(live_server, app, key_headers):
    from app.engine import deploy, instances
    from app.engine.models import Instance
    from app.extensions import db

    total = 2000
    deploy.deploy(tenant="default", xml=one_task())
    for _ in range(total):
        instances.start(tenant="default", process_id="one")
    db.session.remove()
    seen: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def worker(n):
        session = requests.Session()
        session.headers.update(key_headers)
        while not done.is_set():
            res = session.post(live_server + "/api/v1/jobs/activate", timeout=30, json={
                "type": "work", "worker": f"w{n}", "max_jobs": 10, "timeout": 300000, "request_timeout": 1000})
            assert res.status_code == 200, res.text
            for job in res.json()["data"]["jobs"]:
                done_res = session.put(f"{live_server}/api/v1/jobs/{job['key']}/complete", timeout=30,
                                       json={"variables": {"by": n}})
                assert done_res.status_code == 200, done_res.text
                with lock:
                    seen.append(job["key"])
                    if len(seen) >= total:
                        done.set()

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(worker, n) for n in range(16)]
        if not done.wait(120):
            done.set()
        for future in futures:
            future.result()
    elapsed = time.monotonic() - started
    assert len(seen) == total and len(set(seen)) == total, (len(seen), len(set(seen)))
    states = dict(db.session.execute(select(Instance.state, func.count()).group_by(Instance.state)).all())
    assert states == {"COMPLETED": total}
    print(f"16 workers, {total} jobs: {elapsed:.1f} s, {total / elapsed:.0f} jobs/s")
