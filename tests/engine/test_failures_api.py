import time

from tests.engine.helpers import Api, fixture, one_task


def _order(client, key_headers, amount=50):
    api = Api(client, key_headers)
    api.deploy(fixture("order.bpmn"))
    inst = api.start(_process_id(), {"amount": amount})
    return api, inst


def _process_id():
    import re
    return re.search(rb'<bpmn:process id="([^"]+)"', fixture("order.bpmn")).group(1).decode()


def _fail(api, key, **body):
    return api.call("put", f"/api/v1/jobs/{key}/fail", json=body)


def test_a_failed_job_with_retries_left_comes_back_after_its_backoff(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(one_task(retries=3))
    api.start("one")
    job = api.activate("work")[0]
    status, body = _fail(api, job["key"], retries=2, error_message="Connection timeout", retry_backoff_ms=600)
    assert status == 200, body
    assert body["data"]["status"] == "ACTIVATABLE" and body["data"]["retries"] == 2
    assert body["data"]["retry_backoff_ms"] == 600
    assert api.activate("work") == []
    time.sleep(0.7)
    again = api.activate("work")
    assert again[0]["key"] == job["key"] and again[0]["retries"] == 2
    data = api.job(job["key"])[1]["data"]
    assert [h["action"] for h in data["execution_history"]] == [
        "JOB_CREATED", "JOB_ACTIVATED", "JOB_FAILED_RETRY", "JOB_ACTIVATED"]
    assert data["failure_information"]["failure_history"] == [
        {"attempt": 1, "failed_at": data["execution_history"][2]["timestamp"], "error": "Connection timeout",
         "backoff_ms": 600}]
    assert data["retry_configuration"]["retries_used"] == 1


def test_the_default_backoff_is_exponential_and_retries_default_to_one_fewer(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(one_task(retries=5))
    api.start("one")
    job = api.activate("work")[0]
    status, body = _fail(api, job["key"], error_message="boom")
    assert body["data"]["retries"] == 4 and body["data"]["retry_backoff_ms"] == 2000


def test_a_waiting_worker_is_woken_when_a_backoff_ends(app, client, key_headers):
    app.config["LONG_POLL_MAX_MS"] = 5000
    api = Api(client, key_headers)
    api.deploy(one_task())
    api.start("one")
    job = api.activate("work")[0]
    _fail(api, job["key"], retries=1, error_message="x", retry_backoff_ms=500)
    started = time.monotonic()
    again = api.activate("work", request_timeout=4000)
    assert [j["key"] for j in again] == [job["key"]]
    assert 0.4 < time.monotonic() - started < 2


def test_a_job_failed_with_no_retries_left_opens_an_incident_that_resolving_clears(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(one_task(retries=1))
    inst = api.start("one")
    job = api.activate("work")[0]
    long = "x" * 10000
    status, body = _fail(api, job["key"], retries=0, error_message=long, error_code="SERVICE_UNAVAILABLE")
    assert status == 200 and body["data"]["status"] == "FAILED"
    assert len(body["data"]["error_message"]) == 4000
    data = api.job(job["key"])[1]["data"]
    assert data["status"] == "FAILED" and data["failed_at"].endswith("Z")
    assert data["execution_history"][-1]["action"] == "JOB_FAILED_FINAL"
    assert data["failure_information"]["final_attempt"] is True
    assert data["failure_information"]["error_code"] == "SERVICE_UNAVAILABLE"
    info = data["incident_information"]
    assert info["incident_created"] is True and info["incident_type"] == "JOB_FAILURE"
    assert info["incident_id"].startswith("srv1-incident-")
    shown = api.instance(inst["process_instance_id"])
    assert [i["incident_key"] for i in shown["incidents"]] == [info["incident_id"]]
    status, body = api.call("get", "/api/v1/incidents?state=OPEN")
    assert [i["incident_key"] for i in body["data"]["incidents"]] == [info["incident_id"]]
    assert api.activate("work") == []
    status, body = api.call("post", f"/api/v1/incidents/{info['incident_id']}/resolve", json={"retries": 2})
    assert status == 200 and body["data"]["state"] == "RESOLVED"
    again = api.activate("work")
    assert again[0]["key"] == job["key"] and again[0]["retries"] == 2
    assert api.complete(job["key"])[0] == 200
    assert api.instance(inst["process_instance_id"])["state"] == "COMPLETED"
    status, body = api.call("post", f"/api/v1/incidents/{info['incident_id']}/resolve", json={})
    assert status == 409 and body["error"]["code"] == "INCIDENT_NOT_OPEN"


def test_a_bpmn_error_caught_by_a_boundary_event_continues_there(client, key_headers):
    api, inst = _order(client, key_headers)
    job = api.activate("payment-processor")[0]
    status, body = api.call("post", f"/api/v1/jobs/{job['key']}/throw-error",
                            json={"error_code": "PAYMENT_DECLINED", "error_message": "card declined",
                                  "variables": {"declined": True}})
    assert status == 200, body
    data = body["data"]
    assert data["caught"] is True and data["boundary_event"]["element_id"] == "Boundary_Declined"
    assert [a["element_id"] for a in data["process_continuation"]["next_activities"]] == [
        "Boundary_Declined", "Task_NotifyDecline"]
    decline = api.activate("notify-decline")[0]
    assert decline["variables"]["declined"] is True
    assert api.job(job["key"])[1]["data"]["status"] == "ERROR_THROWN"
    api.complete(decline["key"])
    assert api.instance(inst["process_instance_id"])["state"] == "COMPLETED"


def test_an_uncaught_bpmn_error_opens_an_incident(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(one_task())
    inst = api.start("one")
    job = api.activate("work")[0]
    status, body = api.call("post", f"/api/v1/jobs/{job['key']}/throw-error", json={"error_code": "NOPE"})
    assert status == 200 and body["data"]["caught"] is False
    shown = api.instance(inst["process_instance_id"])
    assert shown["state"] == "ACTIVE"
    assert [i["type"] for i in shown["incidents"]] == ["UNHANDLED_ERROR_EVENT"]
    assert shown["incidents"][0]["error_code"] == "NOPE"
    status, body = api.call("post", f"/api/v1/jobs/{job['key']}/throw-error", json={})
    assert status == 400 and body["error"]["details"]["field_errors"] == {"error_code": "Error code is required"}


def test_a_parallel_fork_and_join_wait_for_both_branches(client, key_headers):
    api, inst = _order(client, key_headers, amount=50)
    pay = api.activate("payment-processor")[0]
    _, body = api.complete(pay["key"])
    assert {a["element_id"] for a in body["data"]["process_continuation"]["next_activities"]} >= {
        "Gateway_Amount", "Gateway_Fork", "Task_Email", "Task_Stock"}
    email, stock = api.activate("email-service")[0], api.activate("inventory-checker")[0]
    assert email["custom_headers"] == {"template": "order-confirmation"}
    api.complete(email["key"])
    assert api.instance(inst["process_instance_id"])["state"] == "ACTIVE"
    _, body = api.complete(stock["key"])
    assert [a["element_id"] for a in body["data"]["process_continuation"]["next_activities"]] == [
        "Gateway_Join", "End_Done"]
    shown = api.instance(inst["process_instance_id"])
    assert shown["state"] == "COMPLETED"
    assert [e["element_id"] for e in shown["element_instances"] if e["element_id"] == "End_Done"] == ["End_Done"]


def test_an_exclusive_gateway_takes_a_true_condition_or_else_its_default_flow(client, key_headers):
    api, _ = _order(client, key_headers, amount=500)
    _, body = api.complete(api.activate("payment-processor")[0]["key"])
    assert [a["element_id"] for a in body["data"]["process_continuation"]["next_activities"]] == [
        "Gateway_Amount", "Task_ManualReview"]
    api.start(_process_id(), {"amount": 5})
    _, body = api.complete(api.activate("payment-processor")[0]["key"])
    assert [a["element_id"] for a in body["data"]["process_continuation"]["next_activities"]][:2] == [
        "Gateway_Amount", "Gateway_Fork"]
