"""The spec's JavaScript GenericWorker/EmailWorker, unchanged, run by Node against the live server."""
import os
import re
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
import requests

from tests import support
from tests.engine.helpers import Api, one_task

HARNESS = os.path.join(support.ROOT, "tests", "fixtures", "js", "run_worker.js")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not on PATH: the spec's JavaScript worker needs Node 18+")


@pytest.fixture(scope="module")
def web(service_env, tmp_path_factory):
    """The live server (gunicorn as the Procfile runs it) with a 1 s long-poll cap instead of 25 s.

    The spec's worker sends no `request_timeout`, so each empty poll waits the cap, and the harness
    stops only after its current poll: a worker that left earlier would leave a request on the
    server that still activates jobs (for nobody, until their 30 s timeout)."""
    proc, base = support.start_web(dict(service_env, LONG_POLL_MAX_MS="1000"),
                                   str(tmp_path_factory.mktemp("web") / "web.log"))
    yield base
    proc.stop()


@contextmanager
def spec_worker(base, api_key, log_path, fail_when_asked=False):
    """The harness as a subprocess; always killed on the way out, and its exit code checked on a clean stop."""
    env = dict(os.environ, CONVEYOR_BASE_URL=base, CONVEYOR_API_KEY=api_key,
               FAIL_WHEN_ASKED="1" if fail_when_asked else "0")
    log = open(log_path, "wb")
    proc = subprocess.Popen([NODE, HARNESS], env=env, stdout=log, stderr=subprocess.STDOUT)

    def output():
        with open(log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-5000:]
    proc.output = output
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.output()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def _wait_until_completed(api, keys, worker, seconds=20):
    deadline = time.monotonic() + seconds
    while True:
        instances = [api.instance(key) for key in keys]
        open_ones = [i["process_instance_id"] for i in instances if i["state"] != "COMPLETED"]
        if not open_ones:
            return instances
        assert worker.poll() is None, f"the worker exited early:\n{worker.output()}"
        assert time.monotonic() < deadline, f"not completed: {open_ones}\n{worker.output()}"
        time.sleep(0.2)


def _email(n, **extra):
    return {"recipient": f"user{n}@example.com", "subject": f"Welcome #{n}", "body": f"Hello user {n}", **extra}


def _job_of(api, instance):
    [summary] = instance["jobs"]
    status, body = api.job(summary["key"])
    assert status == 200, body
    return body["data"]


def _assert_email_sent(instance, n, since):
    variables = instance["variables"]
    assert {k: variables[k] for k in ("recipient", "subject", "body")} == _email(n)
    assert variables["emailSent"] is True
    assert re.fullmatch(r"msg_[0-9a-z]+", variables["messageId"]), variables
    sent_at = datetime.fromisoformat(variables["sentAt"].replace("Z", "+00:00"))
    assert since <= sent_at <= datetime.now(timezone.utc)


@pytest.fixture
def api(web, key_headers):
    session = requests.Session()
    yield Api(session, key_headers, web)
    session.close()


def test_the_specs_email_worker_completes_every_instance_it_is_given(web, api, make_key, tmp_path):
    api.deploy(one_task("send-email", "email-service"))
    since = datetime.now(timezone.utc)
    keys = [api.start("send-email", _email(n))["process_instance_id"] for n in range(6)]
    with spec_worker(web, make_key("job", name="email-worker"), tmp_path / "worker.log") as worker:
        # Half wait for the worker, half arrive while it long-polls.
        keys += [api.start("send-email", _email(n))["process_instance_id"] for n in range(6, 12)]
        instances = _wait_until_completed(api, keys, worker)
        name = f"email-service-worker-{worker.pid}"

    for n, instance in enumerate(instances):
        _assert_email_sent(instance, n, since)
        job = _job_of(api, instance)
        assert job["status"] == "COMPLETED"
        assert [(h["action"], h.get("worker_id")) for h in job["execution_history"]] == [
            ("JOB_CREATED", None), ("JOB_ACTIVATED", name), ("JOB_COMPLETED", name)]
        assert job["execution_summary"]["completed_by"] == name
        assert "failure_information" not in job
    assert len({i["variables"]["messageId"] for i in instances}) == len(instances)


def test_jobs_whose_logic_throws_are_failed_through_the_specs_fail_job_and_retried(
        web, api, make_key, tmp_path):
    api.deploy(one_task("send-email", "email-service", retries=5))  # 5, so retries 2 is what failJob sent
    failing = {1: "SMTP relay refused user1@example.com", 4: "Mailbox user4@example.com is full",
               7: "SMTP relay refused user7@example.com"}
    since = datetime.now(timezone.utc)
    keys = [api.start("send-email", _email(n, **({"failWith": failing[n]} if n in failing else {})))[
        "process_instance_id"] for n in range(12)]
    with spec_worker(web, make_key("job", name="email-worker"), tmp_path / "worker.log",
                     fail_when_asked=True) as worker:
        # Each failed job waits out the default 2 s backoff before the worker gets it again.
        instances = _wait_until_completed(api, keys, worker)
        name = f"email-service-worker-{worker.pid}"

    for n, instance in enumerate(instances):
        _assert_email_sent(instance, n, since)
        job = _job_of(api, instance)
        history = job["execution_history"]
        if n not in failing:
            assert [h["action"] for h in history] == ["JOB_CREATED", "JOB_ACTIVATED", "JOB_COMPLETED"]
            assert "failure_information" not in job
            assert job["retry_configuration"]["retries"] == 5
            continue
        assert [(h["action"], h.get("worker_id")) for h in history] == [
            ("JOB_CREATED", None), ("JOB_ACTIVATED", name), ("JOB_FAILED_RETRY", name),
            ("JOB_ACTIVATED", name), ("JOB_COMPLETED", name)]
        failed = history[2]
        assert failed["error"] == failing[n] and failed["retries_left"] == 2
        info = job["failure_information"]
        assert info["error_message"] == failing[n]
        assert info["total_attempts"] == 1 and info["failure_history"][0]["error"] == failing[n]
        assert job["retry_configuration"]["retries"] == 2
        assert job["retry_configuration"]["original_retries"] == 5
        assert job["status"] == "COMPLETED" and job["execution_summary"]["completed_by"] == name
