"""A long-polling worker that hangs up activates nothing: gunicorn as the Procfile runs it, raw HTTP sockets."""
import json
import socket
import struct
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests import support
from tests.engine.helpers import Api, one_task


def _request(method, path, headers, body=None) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(payload)}",
             "Content-Type: application/json", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def _park(base, headers, job_type, worker, request_timeout=10000):
    """Send a long-polling activate on a raw socket and leave it waiting on the server."""
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=15)
    sock.sendall(_request("POST", "/api/v1/jobs/activate", headers, {
        "type": job_type, "worker": worker, "timeout": 60000, "request_timeout": request_timeout}))
    time.sleep(0.3)  # parked on its notification by now
    return sock


def _hang_up(sock, how):
    if how == "reset":  # a killed process's connection: RST, not FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _read_response(stream):
    status = int(stream.readline().split()[1])
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, json.loads(stream.read(length))


class LiveWaiter(threading.Thread):
    """A worker long-polling through `requests`, as a real worker does."""

    def __init__(self, base, headers, job_type, request_timeout=5000):
        super().__init__(daemon=True)
        self.args = base, headers, job_type, request_timeout
        self.status, self.jobs, self.answered_at = None, None, None
        self.start()
        time.sleep(0.3)  # parked behind any earlier waiter

    def run(self):
        base, headers, job_type, request_timeout = self.args
        res = requests.post(base + "/api/v1/jobs/activate", headers=headers, timeout=30, json={
            "type": job_type, "worker": "live", "timeout": 60000, "request_timeout": request_timeout})
        self.answered_at, self.status = time.monotonic(), res.status_code
        self.jobs = res.json()["data"]["jobs"] if res.status_code == 200 else None


def _the_live_waiter_gets_the_job_at_once(base, headers, how):
    api = Api(requests, headers, base)
    job_type = f"gone-{how}-{time.monotonic_ns()}"  # the web process outlives a test: no earlier waiter shares it
    api.deploy(one_task("one", job_type))
    gone = _park(base, headers, job_type, "gone")
    live = LiveWaiter(base, headers, job_type)
    _hang_up(gone, how)
    started = time.monotonic()
    instance = api.start("one")["process_instance_id"]
    live.join(15)
    assert live.status == 200 and [j["process_instance_id"] for j in live.jobs] == [instance]
    assert live.answered_at - started < 1.0
    status, body = api.job(live.jobs[0]["key"])
    assert status == 200 and body["data"]["status"] == "ACTIVE"
    activations = [e.get("worker_id") for e in body["data"]["execution_history"] if e["action"] == "JOB_ACTIVATED"]
    assert activations == ["live"]  # never handed to the gone worker, not even for a moment


@pytest.mark.parametrize("how", ["closed", "reset"])
def test_a_worker_that_hung_up_while_waiting_gets_no_job_and_the_next_waiter_gets_it_at_once(
        live_server, app, key_headers, how):
    _the_live_waiter_gets_the_job_at_once(live_server, key_headers, how)


@pytest.mark.slow
def test_without_gevent_a_hung_up_waiter_passes_its_wake_up_to_the_next_one(service_env, app, key_headers, tmp_path):
    # The gthread worker has no socket watcher: the gone waiter learns it is gone only when woken.
    web, base = support.start_web(dict(service_env, GUNICORN_WORKER_CLASS="gthread"), str(tmp_path / "web.log"))
    try:
        _the_live_waiter_gets_the_job_at_once(base, key_headers, "closed")
    finally:
        web.stop()


@pytest.mark.slow
def test_a_worker_that_hangs_up_frees_its_waiting_place_at_once(service_env, app, key_headers, tmp_path):
    web, base = support.start_web(dict(service_env, LONG_POLL_MAX_WAITERS="1"), str(tmp_path / "web.log"))
    try:
        _hang_up(_park(base, key_headers, "nothing", "gone"), "closed")
        time.sleep(0.3)
        live = LiveWaiter(base, key_headers, "nothing", request_timeout=500)
        live.join(15)
        assert live.status == 200 and live.jobs == []  # not 503 TOO_MANY_WAITERS behind the 10 s wait
    finally:
        web.stop()


def test_a_waiting_worker_that_pipelines_its_next_request_still_gets_its_job(live_server, app, key_headers):
    api = Api(requests, key_headers, live_server)
    job_type = f"pipelined-{time.monotonic_ns()}"
    api.deploy(one_task("one", job_type))
    sock = _park(live_server, key_headers, job_type, "pipeliner")
    sock.sendall(_request("GET", "/healthz", {}))  # readable, but not gone: nothing may read it early
    time.sleep(0.3)
    instance = api.start("one")["process_instance_id"]
    with sock, sock.makefile("rb") as stream:
        status, body = _read_response(stream)
        assert status == 200 and [j["process_instance_id"] for j in body["data"]["jobs"]] == [instance]
        assert body["data"]["jobs"][0]["worker"] == "pipeliner"
        status, _ = _read_response(stream)
        assert status == 200
