"""JSON sent the way `curl -d` sends it: labelled `application/x-www-form-urlencoded`.

The README's examples leave the Content-Type out, as workers in many languages do; such bodies are
read as JSON (or refused as INVALID_JSON), never silently ignored."""
import json

from tests.engine.helpers import Api, one_task

CURL = "application/x-www-form-urlencoded"  # what curl -d says


def _curl(client, method, path, headers, body):
    res = getattr(client, method)(path, headers=headers, data=json.dumps(body), content_type=CURL)
    return res.status_code, res.get_json()


def test_a_worker_using_curl_moves_the_process_with_its_variables(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(one_task())
    status, body = _curl(client, "post", "/api/v1/process-instances", key_headers,
                         {"process_id": "one", "variables": {"orderId": "o-1"}})
    assert status == 201, body
    instance_id = body["data"]["process_instance_id"]
    status, body = _curl(client, "post", "/api/v1/jobs/activate", key_headers, {"type": "work", "worker": "w1"})
    assert status == 200 and body["data"]["activated_count"] == 1, body
    key = body["data"]["jobs"][0]["key"]

    status, body = _curl(client, "put", f"/api/v1/jobs/{key}/complete", key_headers, {"variables": {"paid": True}})

    assert status == 200, body
    assert body["data"]["result_variables"] == {"paid": True}
    assert api.instance(instance_id)["variables"] == {"orderId": "o-1", "paid": True}


def test_a_failure_sent_with_curl_keeps_its_retries_and_message(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(one_task())
    api.start("one")
    key = api.activate("work")[0]["key"]

    status, body = _curl(client, "put", f"/api/v1/jobs/{key}/fail", key_headers,
                         {"retries": 0, "error_message": "smtp down"})

    assert status == 200, body
    assert body["data"]["status"] == "FAILED" and body["data"]["retries"] == 0
    assert api.job(key)[1]["data"]["failure_information"]["error_message"] == "smtp down"


def test_signing_in_with_curl_and_a_real_form_body_answering_invalid_json(client, make_user):
    user = make_user()
    status, body = _curl(client, "post", "/auth/login", {}, {"email": user.email, "password": user.password})
    assert status == 200 and body["token_type"] == "Bearer", body

    res = client.post("/auth/login", data="email=a%40b.c&password=x", content_type=CURL)
    assert res.status_code == 400 and res.get_json()["error"]["code"] == "INVALID_JSON"
