import threading
import time

from tests.engine.helpers import Api, one_task


def test_activating_returns_the_specs_job_shape_with_headers_and_variables(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(one_task("order", "email-service", headers={"priority": "high", "locale": "en-US"}))
    inst = api.start("order", {"recipient": "c@example.com", "subject": "Hi", "orderId": "ORD-1"})
    status, body = api.call("post", "/api/v1/jobs/activate", json={
        "type": "email-service", "worker": "email-worker-01", "max_jobs": 5, "timeout": 60000})
    assert status == 200 and body["success"] is True and body["request_id"].startswith("req_")
    data = body["data"]
    assert data["worker"] == "email-worker-01" and data["activated_count"] == 1 and data["timeout"] == 60000
    job = data["jobs"][0]
    assert set(job) == {"key", "type", "process_instance_id", "element_id", "element_instance_id", "worker",
                        "retries", "deadline", "variables", "custom_headers", "created_at", "activated_at"}
    assert job["key"].startswith("srv1-job-") and job["element_instance_id"].startswith("srv1-elem-")
    assert job["process_instance_id"] == inst["process_instance_id"] and job["element_id"] == "t"
    assert job["retries"] == 3 and job["custom_headers"] == {"priority": "high", "locale": "en-US"}
    assert job["variables"]["orderId"] == "ORD-1" and job["deadline"].endswith("Z")


def test_fetch_variables_limits_the_variables_a_job_carries(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(one_task("p", "payment-processor"))
    api.start("p", {"amount": 10, "currency": "EUR", "secret": "x"})
    jobs = api.activate("payment-processor", fetch_variables=["amount", "currency"])
    assert jobs[0]["variables"] == {"amount": 10, "currency": "EUR"}


def test_no_activatable_job_answers_an_empty_list(client, key_headers):
    api = Api(client, key_headers)
    status, body = api.call("post", "/api/v1/jobs/activate", json={
        "type": "email-service", "worker": "email-worker-01", "timeout": 60000, "request_timeout": 0})
    assert status == 200
    assert body["data"] == {"jobs": [], "worker": "email-worker-01", "activated_count": 0, "timeout": 60000}


def test_invalid_parameters_answer_the_specs_field_errors(client, key_headers):
    status, body = Api(client, key_headers).call("post", "/api/v1/jobs/activate",
                                                 json={"max_jobs": 0, "timeout": 10})
    assert status == 400 and body["success"] is False
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["message"] == "Invalid request parameters"
    assert body["error"]["details"]["field_errors"] == {
        "type": "Job type is required", "worker": "Worker ID is required",
        "max_jobs": "Max jobs must be between 1 and 100",
        "timeout": "Timeout must be between 1000 and 3600000 milliseconds"}


def test_a_malformed_body_without_content_type_is_invalid_json(client, key_headers):
    res = client.post("/api/v1/jobs/activate", data=b'{"type": "x", ', headers=key_headers)
    assert res.status_code == 400
    assert res.get_json()["error"]["code"] == "INVALID_JSON"
    assert res.get_json()["success"] is False


def test_a_body_without_content_type_is_read_as_json(client, key_headers):
    res = client.post("/api/v1/jobs/activate", data=b'{"type": "x", "worker": "w", "request_timeout": 0}',
                      headers=key_headers)
    assert res.status_code == 200, res.get_json()


def test_a_job_is_activated_by_one_worker_only_while_active(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(one_task())
    api.start("one")
    assert len(api.activate("work", worker="a")) == 1
    assert api.activate("work", worker="b") == []


def test_another_tenants_jobs_are_invisible(client, make_key, key_headers):
    api = Api(client, key_headers)
    api.deploy(one_task())
    api.start("one")
    other = Api(client, {"X-API-Key": make_key("job,process", tenant="other")})
    assert other.activate("work") == []
    key = api.activate("work")[0]["key"]
    status, body = other.job(key)
    assert status == 404 and body["error"]["code"] == "JOB_NOT_FOUND"
    status, body = other.complete(key)
    assert status == 404 and body["error"]["code"] == "JOB_NOT_FOUND"
    status, _ = other.call("get", f"/api/v1/process-instances/{api.activate('work') and key}")
    assert status == 404


def test_a_waiting_activate_is_answered_when_an_instance_starts(app, client, key_headers):
    app.config["LONG_POLL_MAX_MS"] = 10000
    api = Api(client, key_headers)
    api.deploy(one_task())
    result = {}

    def wait():
        result["jobs"] = Api(app.test_client(), key_headers).activate("work", request_timeout=8000)
        result["at"] = time.monotonic()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    started = time.monotonic()
    api.start("one")
    waiter.join(10)
    assert len(result["jobs"]) == 1
    assert result["at"] - started < 2


def test_the_long_poll_wait_is_capped_by_the_setting(app, client, key_headers):
    app.config["LONG_POLL_MAX_MS"] = 300
    started = time.monotonic()
    assert Api(client, key_headers).activate("nothing", request_timeout=60000) == []
    assert 0.25 < time.monotonic() - started < 3


def test_too_many_waiting_requests_answer_503_with_retry_after(app, client, key_headers):
    app.config["LONG_POLL_MAX_WAITERS"] = 0
    status, body = Api(client, key_headers).call("post", "/api/v1/jobs/activate", json={
        "type": "x", "worker": "w", "request_timeout": 1000})
    assert status == 503 and body["error"]["code"] == "TOO_MANY_WAITERS"
    res = client.post("/api/v1/jobs/activate", json={"type": "x", "worker": "w", "request_timeout": 1000},
                      headers=key_headers)
    # Flask-Limiter (on every /api/v1 answer) may raise it to its own window's reset, never lower.
    assert int(res.headers["Retry-After"]) >= 1
