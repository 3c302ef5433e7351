import threading
import time

from tests.engine.helpers import Api, one_task, two_tasks


def _active(client, key_headers, xml=None, process="one", job_type="work", variables=None, **activate):
    api = Api(client, key_headers)
    api.deploy(xml or one_task())
    inst = api.start(process, variables or {})
    return api, inst, api.activate(job_type, **activate)[0]


def test_completing_answers_the_specs_shape_and_moves_the_process_on(client, key_headers):
    api, inst, job = _active(client, key_headers, two_tasks(), "two", "first", {"amount": 1, "gone": True},
                             worker="payment-worker-02")
    status, body = api.complete(job["key"], {"amount": 299.99, "transactionId": "txn_1", "gone": None})
    assert status == 200, body
    data = body["data"]
    assert data["job_key"] == job["key"] and data["status"] == "COMPLETED"
    assert data["completed_by"] == "payment-worker-02" and data["completed_at"].endswith("Z")
    summary = data["execution_summary"]
    assert set(summary) == {"started_at", "total_duration_ms", "processing_time_ms", "system_overhead_ms",
                            "retries_used"}
    assert summary["processing_time_ms"] + summary["system_overhead_ms"] == summary["total_duration_ms"]
    assert summary["retries_used"] == 0
    cont = data["process_continuation"]
    assert cont["process_instance_id"] == inst["process_instance_id"] and cont["element_id"] == "a"
    assert cont["token_id"].startswith("srv1-token-")
    assert cont["next_activities"] == [{"element_id": "b", "element_type": "serviceTask", "element_name": "Second"}]
    assert data["variables_updated"] == {"added": ["transactionId"], "modified": ["amount"], "removed": ["gone"]}
    assert data["result_variables"] == {"amount": 299.99, "transactionId": "txn_1", "gone": None}
    nxt = api.activate("second")[0]
    assert nxt["variables"] == {"amount": 299.99, "transactionId": "txn_1"}
    assert api.complete(nxt["key"])[0] == 200
    assert api.instance(inst["process_instance_id"])["state"] == "COMPLETED"


def test_completing_without_a_body_is_allowed(client, key_headers):
    api, _, job = _active(client, key_headers)
    res = client.put(f"/api/v1/jobs/{job['key']}/complete", headers=key_headers)
    assert res.status_code == 200, res.get_json()


def test_an_unknown_job_answers_404_job_not_found(client, key_headers):
    status, body = Api(client, key_headers).complete("srv1-job-nonexistent")
    assert status == 404 and body["error"]["code"] == "JOB_NOT_FOUND"
    assert body["error"]["details"]["job_key"] == "srv1-job-nonexistent"
    assert "Job belongs to different worker" in body["error"]["details"]["possible_reasons"]


def test_variables_that_are_not_an_object_answer_invalid_variables(client, key_headers):
    api, _, job = _active(client, key_headers)
    status, body = api.call("put", f"/api/v1/jobs/{job['key']}/complete", json={"variables": [1, 2]})
    assert status == 400 and body["error"]["code"] == "INVALID_VARIABLES"
    assert body["error"]["details"]["validation_errors"][0]["field"] == "variables"


def test_completing_a_job_of_a_cancelled_instance_answers_409(client, key_headers):
    api, inst, job = _active(client, key_headers, worker="payment-worker-02")
    status, body = api.call("post", f"/api/v1/process-instances/{inst['process_instance_id']}/cancel")
    assert status == 200 and body["data"]["state"] == "CANCELLED"
    status, body = api.complete(job["key"])
    assert status == 409 and body["error"]["code"] == "JOB_NOT_COMPLETABLE"
    assert body["error"]["details"] == {"job_key": job["key"], "current_status": "CANCELLED",
                                       "worker_id": "payment-worker-02",
                                       "reason": "Job was cancelled before completion"}


def test_a_completed_job_cannot_be_completed_again(client, key_headers):
    api, _, job = _active(client, key_headers)
    assert api.complete(job["key"])[0] == 200
    status, body = api.complete(job["key"])
    assert status == 409 and body["error"]["details"]["current_status"] == "COMPLETED"


def test_a_worker_cannot_complete_a_job_another_worker_holds(client, key_headers):
    api, _, job = _active(client, key_headers, worker="owner")
    status, body = api.complete(job["key"], worker="intruder")
    assert status == 404 and body["error"]["details"]["reason"] == "Job belongs to different worker"
    assert api.complete(job["key"], worker="owner")[0] == 200


def test_racing_completes_complete_a_job_once(app, client, key_headers):
    api, inst, job = _active(client, key_headers)
    statuses = []

    def finish():
        statuses.append(Api(app.test_client(), key_headers).complete(job["key"], {"by": "race"})[0])

    threads = [threading.Thread(target=finish) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [200] + [409] * 5
    status, body = api.job(job["key"])
    assert [h["action"] for h in body["data"]["execution_history"]].count("JOB_COMPLETED") == 1


def test_a_job_past_its_deadline_is_activated_again_without_spending_a_retry(client, key_headers):
    api, _, job = _active(client, key_headers, timeout=1000, worker="slow")
    time.sleep(1.1)
    # A long poll: an RQ worker's timeout sweep may hold the row for a moment (activation skips locked
    # rows), and its release wakes the poll.
    again = api.activate("work", worker="fast", request_timeout=3000)
    assert [j["key"] for j in again] == [job["key"]] and again[0]["retries"] == 3
    status, body = api.complete(job["key"], worker="slow")
    assert status == 404 and body["error"]["details"]["reason"] == "Job belongs to different worker"
    status, body = api.job(job["key"])
    actions = [h["action"] for h in body["data"]["execution_history"]]
    assert actions == ["JOB_CREATED", "JOB_ACTIVATED", "JOB_TIMED_OUT", "JOB_ACTIVATED"]
    assert body["data"]["worker_assignment"]["worker_id"] == "fast"


def test_patch_extends_the_deadline_and_sets_retries(client, key_headers):
    api, _, job = _active(client, key_headers, timeout=1000)
    status, body = api.call("patch", f"/api/v1/jobs/{job['key']}", json={"timeout": 60000, "retries": 7})
    assert status == 200, body
    assert body["data"]["retry_configuration"]["retries"] == 7
    assert body["data"]["remaining_time_ms"] > 50000
    time.sleep(1.1)
    assert api.activate("work", worker="other") == []
    assert api.complete(job["key"])[0] == 200
    status, body = api.call("patch", f"/api/v1/jobs/{job['key']}", json={})
    assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR"


def test_get_job_shows_the_specs_fields_for_active_and_completed_jobs(client, key_headers):
    api, inst, job = _active(client, key_headers, one_task(headers={"priority": "high"}), worker="w9",
                             variables={"orderId": "ORD-1"}, max_jobs=5, timeout=120000)
    status, body = api.job(job["key"])
    data = body["data"]
    assert status == 200 and data["status"] == "ACTIVE" and data["timeout_ms"] == 120000
    assert data["remaining_time_ms"] <= 120000 and data["elapsed_time_ms"] >= 0
    assert data["process_context"] == {
        "process_instance_id": inst["process_instance_id"], "process_id": "one", "process_version": 1,
        "element_id": "t", "element_type": "serviceTask", "element_name": "Do the work",
        "element_instance_id": job["element_instance_id"], "token_id": data["process_context"]["token_id"]}
    assert data["worker_assignment"]["worker_id"] == "w9" and data["worker_assignment"]["max_jobs_for_worker"] == 5
    assert data["worker_assignment"]["current_jobs_for_worker"] == 1
    assert data["retry_configuration"]["original_retries"] == 3 and data["tenant_id"] == "default"
    assert data["custom_headers"] == {"priority": "high"} and data["variables"] == {"orderId": "ORD-1"}
    assert data["performance_metrics"]["timeout_risk"] == "LOW"
    api.complete(job["key"], {"emailSent": True})
    data = api.job(job["key"])[1]["data"]
    assert data["status"] == "COMPLETED" and data["completed_at"].endswith("Z")
    assert data["execution_summary"]["completed_by"] == "w9"
    assert data["execution_summary"]["result_variables"] == {"emailSent": True}
    assert data["execution_history"][-1]["action"] == "JOB_COMPLETED"
    assert data["execution_history"][-1]["result_summary"]["variables_added"] == 1
    assert 0 <= data["performance_metrics"]["completion_efficiency"] <= 100


def test_sibling_branches_completed_at_once_each_move_the_instance_exactly_once(app, client, key_headers):
    """A fork into four tasks, each to an end event of its own (no join): completing all four at the
    same moment races for the same instance row; every completion must count, none twice."""
    from tests.engine.helpers import flow, model, task
    branches = "".join(task(f"t{i}", "branch") + f'<bpmn:endEvent id="e{i}" />' + flow(f"a{i}", "fork", f"t{i}")
                       + flow(f"b{i}", f"t{i}", f"e{i}") for i in range(4))
    xml = model("forked", '<bpmn:startEvent id="s" /><bpmn:parallelGateway id="fork" />' + branches
                + flow("f0", "s", "fork"))
    api = Api(client, key_headers)
    api.deploy(xml)
    instances = [api.start("forked", {"n": n})["process_instance_id"] for n in range(5)]
    jobs = api.activate("branch", max_jobs=50)
    assert len(jobs) == 20
    statuses = []

    def finish(job):
        statuses.append(Api(app.test_client(), key_headers).complete(job["key"], {job["element_id"]: True})[0])

    threads = [threading.Thread(target=finish, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 20
    for key in instances:
        done = api.instance(key)
        assert done["state"] == "COMPLETED", done
        assert {k: v for k, v in done["variables"].items() if k != "n"} == {f"t{i}": True for i in range(4)}
        assert sorted(e["element_id"] for e in done["element_instances"]) == sorted(
            ["s", "fork"] + [f"t{i}" for i in range(4)] + [f"e{i}" for i in range(4)])


def test_nul_characters_are_refused_with_400_and_the_job_stays_active(client, key_headers):
    """PostgreSQL stores no U+0000 in text or JSONB: refused up front on both databases, not a 500."""
    api = Api(client, key_headers)
    api.deploy(one_task())
    api.start("one")
    job = api.activate("work")[0]
    for variables in ({"name\u0000": 1}, {"name": "a\u0000b"}, {"list": [{"deep": "\u0000"}]}):
        status, body = api.complete(job["key"], variables)
        assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR", body
        assert "U+0000" in body["error"]["details"]["field_errors"]["_body"]
    status, body = api.call("get", "/api/v1/jobs?type=wo%00rk")
    assert status == 400 and "_query" in body["error"]["details"]["field_errors"], body
    status, body = api.call("get", f"/api/v1/jobs/{job['key']}%00")
    assert status == 400 and "_path" in body["error"]["details"]["field_errors"], body
    assert api.job(job["key"])[1]["data"]["status"] == "ACTIVE"
    # A backslash followed by "u0000" is ordinary text, kept as sent.
    status, body = api.complete(job["key"], {"path": "C:\\u0000dir"})
    assert status == 200, body
    assert api.job(job["key"])[1]["data"]["execution_summary"] is not None
    assert body["data"]["result_variables"] == {"path": "C:\\u0000dir"}
