"""The OpenAPI description tells the truth: every answer of a worker's day (successes and each kind of
error) validates against the schema documented for its operation and status, or else the operation's
`default`. A client generated from /openapi.json then types the answers it will really get."""
import io
import json

import pytest
from jsonschema import Draft4Validator

from tests.engine.helpers import model, one_task, task, flow


def _nullable(node):
    """OpenAPI 3.0's `nullable: true` in JSON Schema terms (draft 4 knows no `nullable`)."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable(v) for k, v in node.items()}
    if node.pop("nullable", False):
        if "type" in node:
            node["type"] = [node["type"], "null"]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


class Documented:
    """Calls through the test client, each answer checked against the description."""

    def __init__(self, client, headers):
        spec = client.get("/openapi.json").get_json()
        self.client, self.headers, self.spec = client, headers, spec
        self.components = _nullable(spec["components"])
        self.checked: set[tuple[str, str, int]] = set()

    def validator(self, schema) -> Draft4Validator:
        """A validator of `schema`, whose references resolve to the description's components."""
        return Draft4Validator({**schema, "components": self.components})

    def __call__(self, method, template, status, *, path=None, **kw):
        res = getattr(self.client, method)(path or template, headers=kw.pop("headers", self.headers), **kw)
        body = res.get_json(silent=True)
        assert res.status_code == status, body
        responses = self.spec["paths"][template][method]["responses"]
        documented = responses.get(str(status)) or responses["default"]
        self.checked.add((method, template, status))
        if "content" not in documented:  # 204 No Content
            assert not res.data, res.data
            return None
        if res.mimetype != "application/json":  # a file
            assert res.mimetype in documented["content"], (res.mimetype, documented)
            return res.data
        schema = documented["content"]["application/json"]["schema"]
        errors = sorted(self.validator(schema).iter_errors(body), key=str)
        assert not errors, f"{method.upper()} {template} {status}: {[e.message for e in errors]}\n{json.dumps(body)}"
        return body


def _error_caught_or_not():
    return model("err", '<bpmn:startEvent id="s" /><bpmn:endEvent id="e" />' + task("t", "risky", retries=1)
                 + flow("f1", "s", "t") + flow("f2", "t", "e"))


@pytest.fixture
def call(client, key_headers):
    return Documented(client, key_headers)


def test_every_answer_of_a_workers_day_matches_the_description(call, client, make_key):
    jobs, job = "/api/v1/jobs", "/api/v1/jobs/{job_key}"
    xml = {"data": one_task(), "content_type": "application/xml"}
    call("post", "/api/v1/processes", 201, **xml)
    call("post", "/api/v1/processes", 200, **xml)  # the same XML: the same version back
    call("post", "/api/v1/processes", 400, data=b"<not-bpmn", content_type="application/xml")
    call("get", "/api/v1/processes", 200)
    call("get", "/api/v1/processes/{process_id}", 200, path="/api/v1/processes/one")
    call("get", "/api/v1/processes/{process_id}", 404, path="/api/v1/processes/nope")

    instances = "/api/v1/process-instances"
    started = call("post", instances, 201, json={"process_id": "one", "variables": {"n": 1}})["data"]
    call("post", instances, 404, json={"process_id": "nope"})
    call("post", instances, 400, json={"process_id": 5})
    call("get", instances + "/{instance_id}", 200, path=f"{instances}/{started['process_instance_id']}")
    call("get", instances + "/{instance_id}", 404, path=f"{instances}/srv1-nope")

    activated = call("post", jobs + "/activate", 200, json={"type": "work", "worker": "w1", "request_timeout": 0})
    key = activated["data"]["jobs"][0]["key"]
    call("post", jobs + "/activate", 400, data=b"{nope", content_type="application/json")
    call("post", jobs + "/activate", 400, json={"type": "", "worker": "w1", "max_jobs": 0})
    call("get", job, 200, path=f"{jobs}/{key}")
    call("patch", job, 200, path=f"{jobs}/{key}", json={"timeout": 60000})
    call("get", jobs, 200, query_string={"type": "work"})
    call("get", jobs + "/stats", 200)
    call("put", job + "/complete", 400, path=f"{jobs}/{key}/complete", json={"variables": [1]})
    call("put", job + "/complete", 404, path=f"{jobs}/{key}/complete", json={"worker": "someone-else"})
    call("put", job + "/complete", 200, path=f"{jobs}/{key}/complete", json={"variables": {"done": True}})
    call("put", job + "/complete", 409, path=f"{jobs}/{key}/complete", json={})
    call("put", job + "/fail", 409, path=f"{jobs}/{key}/fail", json={"retries": 0})
    call("patch", job, 409, path=f"{jobs}/{key}", json={"timeout": 1000})
    call("get", job, 200, path=f"{jobs}/{key}")  # a completed job: every section filled or null
    call("get", job, 404, path=f"{jobs}/srv1-job-nope")
    call("put", job + "/complete", 404, path=f"{jobs}/srv1-job-nope/complete", json={})
    call("put", job + "/complete", 401, path=f"{jobs}/{key}/complete", json={}, headers={})
    call("put", job + "/complete", 403, path=f"{jobs}/{key}/complete", json={},
         headers={"X-API-Key": make_key("process")})

    call("post", "/api/v1/processes", 201, data=_error_caught_or_not(), content_type="application/xml")
    for thrown in (False, True):
        call("post", instances, 201, json={"process_id": "err"})
        risky = call("post", jobs + "/activate", 200, json={"type": "risky", "worker": "w1"})["data"]["jobs"][0]
        if thrown:
            call("post", job + "/throw-error", 200, path=f"{jobs}/{risky['key']}/throw-error",
                 json={"error_code": "NOPE", "error_message": "no boundary event catches it"})
            call("post", job + "/throw-error", 409, path=f"{jobs}/{risky['key']}/throw-error",
                 json={"error_code": "NOPE"})
        else:
            call("put", job + "/fail", 200, path=f"{jobs}/{risky['key']}/fail",
                 json={"retries": 0, "error_message": "out of luck"})
            call("get", job, 200, path=f"{jobs}/{risky['key']}")  # a failed job, with its incident
    incidents = call("get", "/api/v1/incidents", 200)["data"]
    incident = incidents["incidents"][0]["incident_key"]
    call("get", "/api/v1/incidents", 400, query_string={"state": "AAA"})
    resolve = "/api/v1/incidents/{incident_key}/resolve"
    call("post", resolve, 200, path=f"/api/v1/incidents/{incident}/resolve", json={"retries": 2})
    call("post", resolve, 409, path=f"/api/v1/incidents/{incident}/resolve", json={})
    call("post", resolve, 404, path="/api/v1/incidents/srv1-nope/resolve", json={})

    cancel = instances + "/{instance_id}/cancel"
    call("post", cancel, 409, path=f"{instances}/{started['process_instance_id']}/cancel")  # it completed
    running = call("post", instances, 201, json={"process_id": "one"})["data"]["process_instance_id"]
    call("post", cancel, 200, path=f"{instances}/{running}/cancel")
    call("post", cancel, 404, path=f"{instances}/srv1-nope/cancel")

    documented_v1 = {(m, p) for p, ops in call.spec["paths"].items() if p.startswith("/api/v1")
                     for m in ops if m in ("get", "post", "put", "patch", "delete")}
    assert documented_v1 <= {(m, p) for m, p, _ in call.checked}, "an operation of the worker API went unchecked"


def test_the_user_apis_errors_match_the_description(client):
    call = Documented(client, {})
    call("post", "/auth/login", 400, data=b"{nope", content_type="application/json")
    call("post", "/auth/login", 401, json={"email": "nobody@example.com", "password": "wrong password"})
    call("get", "/api/projects", 401)


def test_a_wrong_method_on_activate_or_stats_is_refused_with_their_own_allow(call):
    """`/jobs/activate` and `/jobs/stats` sit beside `/jobs/{job_key}`: a GET or PATCH there is not a
    lookup of a job called "stats" (404 JOB_NOT_FOUND) but a method the route does not have."""
    for method, path, allowed in (("get", "/api/v1/jobs/activate", ["OPTIONS", "POST"]),
                                  ("patch", "/api/v1/jobs/stats", ["GET", "HEAD", "OPTIONS"])):
        res = getattr(call.client, method)(path, headers=call.headers, json={"timeout": 5000})
        assert res.status_code == 405, res.get_json()
        assert res.get_json()["error"]["details"]["allowed_methods"] == allowed
        assert sorted(call.client.options(path).headers["Allow"].replace(" ", "").split(",")) == allowed


def test_the_user_apis_answers_match_the_description(client, make_user, rq_worker):
    """Projects, project jobs (run by a real RQ worker), webhooks and sign-in, each answer checked."""
    from tests.projects.conftest import csv_bytes, wait_for

    owner, other = make_user(), make_user(email="other@example.com")
    call = Documented(client, {})
    tokens = call("post", "/auth/login", 200, json={"email": owner.email, "password": owner.password})
    call.headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    call("post", "/auth/refresh", 200, json={"refresh_token": tokens["refresh_token"]})
    call("get", "/auth/me", 200)

    projects, project = "/api/projects", "/api/projects/{project_id}"
    pid = call("post", projects, 201, json={"name": "Plant A"})["id"]
    at = f"{projects}/{pid}"
    call("get", projects, 200)
    call("get", project, 200, path=at)
    call("post", project + "/members", 201, path=f"{at}/members", json={"email": other.email})
    call("get", project + "/members", 200, path=f"{at}/members")
    call("delete", project + "/members/{user_id}", 204, path=f"{at}/members/{other.id}")
    rows = [("FT-100", "Feed flow", "AI", "m3/h", 0, 120, 300), ("XV-103", "Feed valve", "DO", "", "", "", 400)]
    header = ("tag", "description", "type", "unit", "range_low", "range_high", "area")
    imported = call("post", project + "/imports", 202, path=f"{at}/imports", content_type="multipart/form-data",
                    data={"file": (io.BytesIO(csv_bytes(rows, header)), "tags.csv")})
    jobs, job = "/api/jobs", "/api/jobs/{job_id}"
    wait_for(client, call.headers, imported["id"])
    call("get", job, 200, path=f"{jobs}/{imported['id']}")  # completed, with its result
    call("get", project + "/records", 200, path=f"{at}/records")
    rule = call("post", project + "/rules", 201, path=f"{at}/rules",
                json={"kind": "required", "field": "unit", "name": "Every tag has a unit"})
    call("get", project + "/rules", 200, path=f"{at}/rules")
    call("get", project + "/rules/{rule_id}", 200, path=f"{at}/rules/{rule['id']}")
    call("put", project + "/rules/{rule_id}", 200, path=f"{at}/rules/{rule['id']}",
         json={"kind": "required", "field": "description"})
    scenario = call("post", project + "/scenarios", 201, path=f"{at}/scenarios",
                    json={"name": "Two tags", "assertions": [{"kind": "count", "value": 2}]})
    call("get", project + "/scenarios", 200, path=f"{at}/scenarios")
    call("get", project + "/scenarios/{scenario_id}", 200, path=f"{at}/scenarios/{scenario['id']}")
    call("put", project + "/scenarios/{scenario_id}", 200, path=f"{at}/scenarios/{scenario['id']}",
         json={"name": "Two tags", "assertions": [{"kind": "count", "value": 2}]})
    started = [call("post", project + "/validations", 202, path=f"{at}/validations"),
               call("post", project + "/test-runs", 202, path=f"{at}/test-runs", json={}),
               call("post", project + "/exports", 202, path=f"{at}/exports", json={"format": "csv"})]
    for done in started:
        wait_for(client, call.headers, done["id"])
        call("get", job, 200, path=f"{jobs}/{done['id']}")
    call("get", job + "/download", 200, path=f"{jobs}/{started[2]['id']}/download")
    call("post", job + "/cancel", 409, path=f"{jobs}/{started[2]['id']}/cancel")
    call("get", jobs, 200)
    call("get", jobs + "/projects/{project_id}", 200, path=f"{jobs}/projects/{pid}")
    call("get", jobs + "/projects/{project_id}/stats", 200, path=f"{jobs}/projects/{pid}/stats")
    call("delete", project + "/rules/{rule_id}", 204, path=f"{at}/rules/{rule['id']}")
    call("delete", project + "/scenarios/{scenario_id}", 204, path=f"{at}/scenarios/{scenario['id']}")

    submitted = call("post", "/submit-job", 202, json={"name": "exampleJob", "data": {"n": 1}})
    call("get", "/jobs/{job_id}", 200, path=f"/jobs/{submitted['jobId']}")
    call("get", "/jobs", 200)
    hook = call("post", "/webhooks", 201, json={"url": "http://127.0.0.1:9/hook"})  # nothing listens there
    call("get", "/webhooks", 200)
    call("put", "/webhooks/{webhook_id}", 200, path=f"/webhooks/{hook['id']}", json={"active": False})
    call("get", "/webhooks/{webhook_id}/deliveries", 200, path=f"/webhooks/{hook['id']}/deliveries")
    call("delete", "/webhooks/{webhook_id}", 204, path=f"/webhooks/{hook['id']}")
    call("post", "/auth/logout", 204, json={"refresh_token": tokens["refresh_token"]})


def _request_schema(call, method, template):
    body = call.spec["paths"][template][method]["requestBody"]["content"]["application/json"]["schema"]
    return call.validator(body)


def test_patch_jobs_rule_over_its_fields_is_in_the_description(call):
    """`PATCH /api/v1/jobs/{key}` needs `timeout`, `retries` or both: the description says so too, and
    agrees with the server on each body."""
    job = "/api/v1/jobs/{job_key}"
    documented = _request_schema(call, "patch", job)
    for body, accepted in (({}, False), ({"timeout": None, "retries": None}, False), ({"timeout": 5000}, True),
                           ({"retries": 2}, True), ({"timeout": None, "retries": 2}, True)):
        assert documented.is_valid(body) is accepted, body
        res = call.client.patch("/api/v1/jobs/srv1-job-nope", headers=call.headers, json=body)
        assert res.status_code == (404 if accepted else 400), (body, res.get_json())


def test_answers_fields_are_required_only_in_answers(call):
    """A response schema that extends a request schema (a rule, a scenario) marks its own fields
    required; the request's stay as they were."""
    schemas = call.spec["components"]["schemas"]
    assert sorted(schemas["RuleIn"]["required"]) == ["field", "kind"]
    assert sorted(schemas["Rule"]["required"]) == ["field", "id", "kind", "name", "params"]
    assert sorted(schemas["ScenarioIn"]["required"]) == ["assertions", "name"]
    assert "cancelled" not in schemas["JobStatus"]["required"]
