"""Every error, on every surface, is JSON in that surface's envelope; never an HTML page."""
import pytest


def _v1_error(res, status, code):
    body = res.get_json()
    assert res.status_code == status, body
    assert body["success"] is False and body["error"]["code"] == code, body
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["request_id"].startswith("req_") and res.headers["X-Request-ID"] == body["request_id"]
    return body


def test_worker_routes_need_a_key(client):
    _v1_error(client.get("/api/v1/jobs"), 401, "UNAUTHORIZED")
    _v1_error(client.get("/api/v1/jobs", headers={"X-API-Key": "cvk_deadbeef_nope"}), 401, "UNAUTHORIZED")
    _v1_error(client.get("/api/v1/jobs", headers={"X-API-Key": "garbage"}), 401, "UNAUTHORIZED")


def test_worker_routes_refuse_user_tokens(client, user_headers):
    body = _v1_error(client.get("/api/v1/jobs", headers=user_headers()), 401, "UNAUTHORIZED")
    assert "API keys only" in body["error"]["message"]


def test_a_key_without_the_permission_is_forbidden(client, make_key):
    body = _v1_error(client.get("/api/v1/jobs", headers={"X-API-Key": make_key("process")}), 403, "FORBIDDEN")
    assert body["error"]["details"]["missing"] == ["job"]


def test_revoked_key_answers_401_at_once(app, client, make_key):
    from app.auth import service
    raw = make_key("job")
    assert client.get("/api/v1/jobs", headers={"X-API-Key": raw}).status_code == 200
    service.revoke_key(service.list_keys()[0].id)
    _v1_error(client.get("/api/v1/jobs", headers={"X-API-Key": raw}), 401, "UNAUTHORIZED")


def test_success_envelope_and_last_used(app, client, make_key):
    from app.auth import service
    raw = make_key("job")
    res = client.get("/api/v1/jobs", headers={"X-API-Key": raw})
    body = res.get_json()
    assert body["success"] is True and "data" in body and body["request_id"] == res.headers["X-Request-ID"]
    assert service.list_keys()[0].last_used_at is not None


def test_unknown_path_and_wrong_method_under_v1(client, key_headers):
    _v1_error(client.get("/api/v1/nothing-here", headers=key_headers), 404, "NOT_FOUND")
    body = _v1_error(client.delete("/api/v1/jobs", headers=key_headers), 405, "METHOD_NOT_ALLOWED")
    assert "GET" in body["error"]["details"]["allowed_methods"]


def test_validation_error_names_each_field(client, key_headers):
    body = _v1_error(client.get("/api/v1/jobs?limit=0", headers=key_headers), 400, "VALIDATION_ERROR")
    assert "limit" in body["error"]["details"]["field_errors"]


def test_v1_rate_limit_is_per_key(app, client, make_key):
    app.config["API_RATE_LIMIT"] = "2/minute"
    raw, other = make_key("job", name="a"), make_key("job", name="b")
    codes = [client.get("/api/v1/jobs", headers={"X-API-Key": raw}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    _v1_error(client.get("/api/v1/jobs", headers={"X-API-Key": raw}), 429, "RATE_LIMITED")
    assert client.get("/api/v1/jobs", headers={"X-API-Key": other}).status_code == 200


def test_invalid_json_and_oversize_bodies_on_the_user_surface(app, client):
    res = client.post("/auth/login", data="{", content_type="application/json")
    assert res.status_code == 400 and res.get_json()["error"]["code"] == "INVALID_JSON"
    res = client.post("/auth/login", data=b"{" + b" " * (app.config["JSON_MAX_BYTES"] + 10) + b"}",
                      content_type="application/json")
    assert res.status_code == 413 and res.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    res = client.post("/auth/login", json=[1, 2])
    assert res.status_code == 400 and res.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_unexpected_errors_are_500_without_a_trace(app, client, make_user, monkeypatch):
    from app.api import auth as auth_routes

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals /etc/passwd")
    monkeypatch.setattr(auth_routes.service, "login", broken)
    res = client.post("/auth/login", json={"email": "a@b.c", "password": "whatever1"})
    body = res.get_json()
    assert res.status_code == 500 and body["error"]["code"] == "INTERNAL_ERROR"
    assert "passwd" not in res.get_data(as_text=True) and "Traceback" not in res.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/api/nope", "/auth/nope", "/jobs/nope/deeper", "/webhooks/x/y/z"])
def test_no_api_path_answers_html(client, path):
    res = client.get(path)
    assert res.status_code == 404 and res.is_json and res.get_json()["error"]["code"] == "NOT_FOUND"


def test_incoming_request_id_is_kept(client):
    res = client.get("/healthz", headers={"X-Request-ID": "trace-abc-123"})
    assert res.headers["X-Request-ID"] == "trace-abc-123"
    res = client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert res.headers["X-Request-ID"].startswith("req_")


@pytest.mark.parametrize("row_id", ["2147483648", "17284095876709537021952"])
def test_an_id_larger_than_any_row_is_the_routes_own_404(client, user_headers, row_id):
    """Found by schemathesis: such ids reached the database, which refused them with a 500."""
    headers = user_headers()
    project = client.post("/api/projects", headers=headers, json={"name": "Plant"}).get_json()["id"]
    hook, scenario = {"url": "https://example.com/hook"}, {"name": "x", "assertions": []}
    for method, path, body, code in (
            ("put", f"/webhooks/{row_id}", hook, "WEBHOOK_NOT_FOUND"),
            ("delete", f"/webhooks/{row_id}", None, "WEBHOOK_NOT_FOUND"),
            ("get", f"/webhooks/{row_id}/deliveries", None, "WEBHOOK_NOT_FOUND"),
            ("get", f"/api/projects/{project}/rules/{row_id}", None, "RULE_NOT_FOUND"),
            ("put", f"/api/projects/{project}/scenarios/{row_id}", scenario, "SCENARIO_NOT_FOUND"),
            ("delete", f"/api/projects/{project}/members/{row_id}", None, "MEMBER_NOT_FOUND")):
        res = getattr(client, method)(path, headers=headers, json=body)
        assert res.status_code == 404 and res.get_json()["error"]["code"] == code, (method, path, res.get_json())


def test_what_gunicorn_refuses_before_the_app_is_json_too(live_server):
    """A request line over 4094 bytes or a header over 8190 never reaches Flask: gunicorn answers it."""
    import requests

    too_long = requests.get(live_server + "/api/v1/jobs/" + "x" * 5000, timeout=10)
    too_big = requests.get(live_server + "/healthz", headers={"X-Padding": "y" * 9000}, timeout=10)
    for res, status, code in ((too_long, 400, "BAD_REQUEST"), (too_big, 431, "REQUEST_HEADERS_TOO_LARGE")):
        assert res.status_code == status and res.headers["Content-Type"] == "application/json", res.text
        body = res.json()
        assert body["error"]["code"] == code and body["error"]["message"], body
        assert body["request_id"] == res.headers["X-Request-ID"]
        assert body["success"] is False  # the worker API's envelope, which a user API client reads as its own
    assert "Request Line is too large" in too_long.json()["error"]["message"]


def test_a_database_that_cannot_be_reached_is_a_503_that_says_so(redis_url):
    """Nothing listens where the database should be: each surface answers 503 in its own envelope, naming
    the database and when to retry, not a 500 that reads as a bug of ours."""
    from app import create_app
    from tests import support

    away = create_app(env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{support.free_port()}/nothing",
                           "REDIS_URL": redis_url, "LOG_LEVEL": "ERROR"})
    client = away.test_client()
    worker = client.get("/api/v1/jobs", headers={"X-API-Key": "cvk_deadbeef_" + "x" * 43})
    assert worker.status_code == 503 and worker.headers["Retry-After"] == "2", worker.get_json()
    assert worker.get_json()["success"] is False
    assert worker.get_json()["error"]["details"] == {"dependency": "database"}
    user = client.post("/auth/login", json={"email": "someone@example.com", "password": "a password"})
    assert user.status_code == 503 and user.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE", user.get_json()
    assert client.get("/readyz").get_json()["checks"]["database"].startswith("error")
