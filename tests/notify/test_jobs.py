"""/submit-job, /jobs and the whole path: a real RQ worker runs the job; socket and webhook hear it."""
import json
import socket
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests

from app import clock, dbsetup
from app.extensions import db
from app.notify import signing


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def add_job(user_id, status, created_offset_s=0, **fields):
    from app.projects.models import Job
    now = clock.utcnow() - timedelta(seconds=created_offset_s)
    job = Job(id=str(uuid.uuid4()), type="dataProcessing", status=status, progress=fields.pop("progress", 0),
              params={}, attempts=0, created_at=now, created_by=user_id, cancel_requested=False, **fields)
    # A write transaction of its own: on SQLite, an INSERT continuing a read the session left open
    # (reading `user.id`, say) fails at once if the session's RQ worker wrote in between.
    job_id = job.id  # read now: after the commit it would be reloaded, opening another read
    with dbsetup.write(db.session):
        db.session.add(job)
    return job_id


def test_an_unknown_job_name_answers_400_listing_the_known_ones(client, signed_in):
    _, token = signed_in("a@example.com")
    res = client.post("/submit-job", headers=auth(token), json={"name": "nope", "data": {}})
    assert res.status_code == 400
    message = res.get_json()["error"]["details"]["field_errors"]["name"]
    assert "dataProcessing" in message and "exampleJob" in message


def test_polling_shows_the_spec_shape_and_maps_every_status(client, signed_in):
    user, token = signed_in("a@example.com")
    ids = {status: add_job(user.id, status, created_offset_s=i) for i, status in
           enumerate(("Queued", "Running", "Completed", "Failed", "Cancelled"))}
    delayed = add_job(user.id, "Queued", created_offset_s=10, retry_at=clock.utcnow() + timedelta(seconds=30))
    from app.projects.models import Job
    with dbsetup.write(db.session):
        done = db.session.get(Job, ids["Completed"])
        done.result, done.progress = {"rows": 5}, 100
        done.started_at = done.completed_at = clock.utcnow()
        db.session.get(Job, ids["Failed"]).error = "disk full"
    get = lambda job_id: client.get(f"/jobs/{job_id}", headers=auth(token)).get_json()  # noqa: E731
    body = get(ids["Completed"])
    assert set(body) == {"id", "name", "state", "progress", "result", "failedReason", "timestamp"}
    assert body["state"] == "completed" and body["result"] == {"rows": 5} and body["progress"] == 100
    assert isinstance(body["timestamp"]["created"], int) and isinstance(body["timestamp"]["finished"], int)
    assert get(ids["Queued"])["state"] == "waiting" and get(delayed)["state"] == "delayed"
    assert get(ids["Running"])["state"] == "active"
    assert get(ids["Failed"])["failedReason"] == "disk full"
    cancelled = get(ids["Cancelled"])
    assert cancelled["state"] == "failed" and cancelled["failedReason"] == "Cancelled" and cancelled["cancelled"]


def test_listing_pages_filters_and_shows_only_your_own_jobs(client, signed_in):
    user, token = signed_in("a@example.com")
    other, _ = signed_in("b@example.com")
    for i in range(12):
        add_job(user.id, "Completed" if i % 3 else "Failed", created_offset_s=i)
    add_job(other.id, "Completed")
    page = client.get("/jobs?page=2&limit=5", headers=auth(token)).get_json()
    assert page["pagination"] == {"total": 12, "page": 2, "limit": 5, "pages": 3}
    assert len(page["jobs"]) == 5 and set(page["jobs"][0]) == {"id", "name", "state", "progress", "timestamp"}
    failed = client.get("/jobs?status=failed&limit=100", headers=auth(token)).get_json()
    assert failed["pagination"]["total"] == 4 and {j["state"] for j in failed["jobs"]} == {"failed"}
    assert client.get("/jobs?limit=1000", headers=auth(token)).status_code == 400
    assert client.get("/jobs?status=bogus", headers=auth(token)).status_code == 400


def test_someone_elses_job_answers_404(client, signed_in):
    owner, _ = signed_in("a@example.com")
    _, token = signed_in("b@example.com")
    job_id = add_job(owner.id, "Completed")
    res = client.get(f"/jobs/{job_id}", headers=auth(token))
    assert res.status_code == 404 and res.get_json()["error"]["code"] == "JOB_NOT_FOUND"


def test_job_submission_is_rate_limited_per_user(app, client, signed_in):
    app.config["SUBMIT_RATE_LIMIT"] = "2/minute"
    _, token = signed_in("a@example.com")
    for _ in range(2):
        body = {"name": "dataProcessing", "data": {"steps": 1, "stepMs": 0}}
        assert client.post("/submit-job", headers=auth(token), json=body).status_code == 202
    res = client.post("/submit-job", headers=auth(token), json={"name": "dataProcessing"})
    assert res.status_code == 429 and res.get_json()["error"]["code"] == "RATE_LIMITED"
    assert int(res.headers["Retry-After"]) >= 1


def test_concurrent_submissions_all_answer_promptly(live_server, signed_in):
    """Eight clients submitting at once to one gevent web worker. On SQLite, a greenlet waiting for the
    write lock inside SQLite froze the worker, the lock's holder with it, until the 30 s busy timeout:
    this answered 500s after 30-60 s, then gunicorn killed the worker."""
    _, token = signed_in("a@example.com")

    def submit_five(_):
        answers = []
        with requests.Session() as session:
            for _ in range(5):
                started = time.monotonic()
                res = session.post(live_server + "/submit-job", headers=auth(token), timeout=20,
                                   json={"name": "dataProcessing", "data": {"steps": 1, "stepMs": 0}})
                answers.append((res.status_code, time.monotonic() - started))
        return answers

    with ThreadPoolExecutor(8) as pool:
        answers = [answer for client_answers in pool.map(submit_five, range(8)) for answer in client_answers]
    assert [status for status, _ in answers] == [202] * 40
    assert max(seconds for _, seconds in answers) < 10


def test_a_writer_in_another_process_does_not_freeze_the_web_worker(live_server, database_url, signed_in):
    """Another process (an RQ job's transaction) holds SQLite's write lock while a submission arrives:
    the submission waits for it, and the worker goes on answering meanwhile. It used to wait inside
    SQLite's C code, where gevent cannot switch: /healthz stalled for as long as the lock was held."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's database-wide write lock is the subject")
    _, token = signed_in("a@example.com")
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with ThreadPoolExecutor(1) as pool:
        submitted = pool.submit(requests.post, live_server + "/submit-job", headers=auth(token), timeout=20,
                                json={"name": "dataProcessing", "data": {"steps": 1, "stepMs": 0}})
        probes, held_until = [], time.monotonic() + 1.5
        with requests.Session() as session:
            while time.monotonic() < held_until:
                started = time.monotonic()
                assert session.get(live_server + "/healthz", timeout=20).status_code == 200
                probes.append(time.monotonic() - started)
                time.sleep(0.02)
        assert not submitted.done(), "the submission did not wait for the write lock"
        holder.execute("COMMIT")
        holder.close()
        assert submitted.result().status_code == 202
    assert len(probes) > 10 and max(probes) < 0.5, probes


def test_oversized_job_data_is_refused(client, signed_in):
    _, token = signed_in("a@example.com")
    res = client.post("/submit-job", headers=auth(token), json={"name": "dataProcessing", "data": {"x": "y" * 70000}})
    assert res.status_code == 413 and res.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.slow
def test_a_job_run_by_the_worker_reaches_the_socket_and_the_webhook(live_server, rq_worker, signed_in, sockets,
                                                                    receiver):
    user, token = signed_in("a@example.com")
    secret = requests.post(live_server + "/webhooks", headers=auth(token), json={
        "url": receiver.answer("/all"), "eventType": "all"}).json()["secret"]
    ws = sockets()
    ws.auth(token)
    res = requests.post(live_server + "/submit-job", headers=auth(token), json={
        "name": "dataProcessing", "data": {"rows": 100, "steps": 10, "stepMs": 150},
        "webhookUrl": receiver.answer("/legacy")})
    assert res.status_code == 202
    job_id = res.json()["jobId"]
    ws.send("subscribe:job", job_id)
    done, frames = ws.recv_until(f"job:{job_id}:completed", timeout=30)
    events = [f["event"] for f in frames]
    assert "job:progress" in events and f"job:{job_id}:progress" in events and "job:completed" in events
    assert done["data"]["result"]["rows"] == 100
    calls = receiver.wait_for(lambda calls: any(json.loads(c["body"])["eventType"] == "completed"
                                                for c in calls if c["path"] == "/all") and
                              any(c["path"] == "/legacy" for c in calls))
    hooked = [json.loads(c["body"]) for c in calls if c["path"] == "/all"]
    assert {"progress", "completed"} <= {b["eventType"] for b in hooked}
    assert all(signing.verify(secret, c["headers"], c["body"]) for c in calls if c["path"] == "/all")
    (legacy,) = [json.loads(c["body"]) for c in calls if c["path"] == "/legacy"]
    assert legacy == {"id": job_id, "jobname": "dataProcessing", "userId": user.id,
                      "result": done["data"]["result"], "eventType": "completed"}
    polled = requests.get(f"{live_server}/jobs/{job_id}", headers=auth(token)).json()
    assert polled["state"] == "completed" and polled["progress"] == 100


@pytest.mark.slow
def test_a_failing_job_reports_failure_everywhere(live_server, rq_worker, signed_in, sockets, receiver):
    user, token = signed_in("a@example.com")
    requests.post(live_server + "/webhooks", headers=auth(token), json={"url": receiver.answer("/f"),
                                                                       "eventType": "failed"})
    ws = sockets()
    ws.auth(token)
    job_id = requests.post(live_server + "/submit-job", headers=auth(token), json={
        "name": "exampleJob", "data": {"steps": 4, "stepMs": 50, "fail": True}}).json()["jobId"]
    frame, _ = ws.recv_until("job:failed", timeout=30)
    assert frame["data"]["jobId"] == job_id and "on purpose" in frame["data"]["error"]
    call = receiver.wait_for(lambda calls: calls)[0]
    assert json.loads(call["body"])["eventType"] == "failed"
    polled = requests.get(f"{live_server}/jobs/{job_id}", headers=auth(token)).json()
    assert polled["state"] == "failed" and "on purpose" in polled["failedReason"]


@pytest.mark.slow
def test_a_dead_receiver_does_not_delay_the_job(live_server, rq_worker, signed_in, sockets):
    _, token = signed_in("a@example.com")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(50)  # accepts connections, never answers: every attempt waits for the 10 s timeout
    try:
        requests.post(live_server + "/webhooks", headers=auth(token), json={
            "url": f"http://127.0.0.1:{silent.getsockname()[1]}/hook", "eventType": "all"})
        ws = sockets()
        ws.auth(token)
        started = time.time()
        requests.post(live_server + "/submit-job", headers=auth(token), json={
            "name": "dataProcessing", "data": {"steps": 5, "stepMs": 100}})
        ws.recv_until("job:completed", timeout=30)
        assert time.time() - started < 5, "the job waited for the webhook receiver"
    finally:
        silent.close()
