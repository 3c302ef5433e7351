"""Webhook CRUD as the spec shows it, per user, with SSRF checks and caps."""
import pytest


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_creating_a_webhook_shows_its_secret_once_and_lists_it_in_the_spec_shape(client, signed_in):
    _, token = signed_in("a@example.com")
    res = client.post("/webhooks", headers=auth(token), json={
        "url": "http://127.0.0.1:9/hook", "eventType": "completed", "description": "Job completion webhook"})
    assert res.status_code == 201, res.get_json()
    created = res.get_json()
    assert created["secret"].startswith("whsec_")
    listed = client.get("/webhooks", headers=auth(token)).get_json()["webhooks"]
    assert len(listed) == 1 and "secret" not in listed[0]
    hook = listed[0]
    assert {k: hook[k] for k in ("id", "url", "eventType", "description", "active")} == {
        "id": created["id"], "url": "http://127.0.0.1:9/hook", "eventType": "completed",
        "description": "Job completion webhook", "active": True}
    assert hook["createdAt"].endswith("Z") and hook["updatedAt"].endswith("Z")


def test_updating_and_deleting_a_webhook(client, signed_in):
    _, token = signed_in("a@example.com")
    hook_id = client.post("/webhooks", headers=auth(token), json={"url": "http://127.0.0.1:9/a"}).get_json()["id"]
    res = client.put(f"/webhooks/{hook_id}", headers=auth(token), json={
        "url": "http://127.0.0.1:9/new", "eventType": "all", "description": "Updated webhook", "active": False})
    assert res.status_code == 200
    assert res.get_json()["url"].endswith("/new") and res.get_json()["active"] is False
    assert client.delete(f"/webhooks/{hook_id}", headers=auth(token)).status_code == 204
    assert client.get("/webhooks", headers=auth(token)).get_json() == {"webhooks": []}


def test_another_users_webhook_answers_404_everywhere(client, signed_in):
    _, owner = signed_in("owner@example.com")
    _, other = signed_in("other@example.com")
    hook_id = client.post("/webhooks", headers=auth(owner), json={"url": "http://127.0.0.1:9/a"}).get_json()["id"]
    for method, path in (("put", f"/webhooks/{hook_id}"), ("delete", f"/webhooks/{hook_id}"),
                         ("get", f"/webhooks/{hook_id}/deliveries"),
                         ("post", f"/webhooks/{hook_id}/deliveries/1/redeliver")):
        res = getattr(client, method)(path, headers=auth(other), json={} if method == "put" else None)
        assert res.status_code == 404, (method, path, res.get_json())
        assert res.get_json()["error"]["code"] == "WEBHOOK_NOT_FOUND"
    assert client.get("/webhooks", headers=auth(other)).get_json() == {"webhooks": []}


def test_webhooks_need_a_token(client):
    res = client.get("/webhooks")
    assert res.status_code == 401 and res.get_json()["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("url, reason", [
    ("ftp://example.com/hook", "Only http and https"),
    ("file:///etc/passwd", "Only http and https"),
    ("http://user:pass@example.com/hook", "Credentials"),
    ("http://127.0.0.1:8080/hook", "non-public"),
    ("http://10.1.2.3/hook", "non-public"),
    ("http://169.254.169.254/latest/meta-data", "non-public"),
    ("http://[::1]/hook", "non-public"),
    ("http://localhost/hook", "non-public"),
])
def test_webhook_urls_that_could_reach_inside_are_refused(app, client, signed_in, url, reason):
    app.config["ALLOW_PRIVATE_WEBHOOKS"] = False
    _, token = signed_in("a@example.com")
    res = client.post("/webhooks", headers=auth(token), json={"url": url})
    assert res.status_code == 400, res.get_json()
    assert res.get_json()["error"]["code"] == "VALIDATION_ERROR"
    assert reason in res.get_json()["error"]["details"]["field_errors"]["url"]


def test_credentials_and_odd_schemes_are_refused_even_when_private_targets_are_allowed(client, signed_in):
    _, token = signed_in("a@example.com")
    for url in ("http://u:p@127.0.0.1/x", "gopher://127.0.0.1/x", "javascript:alert(1)"):
        assert client.post("/webhooks", headers=auth(token), json={"url": url}).status_code == 400


def test_clients_cannot_write_owner_secret_or_counters(client, signed_in):
    _, token = signed_in("a@example.com")
    for field in ({"userId": 2}, {"secret": "whsec_x"}, {"consecutiveFailures": 0}):
        res = client.post("/webhooks", headers=auth(token), json={"url": "http://127.0.0.1:9/a", **field})
        assert res.status_code == 400 and res.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_event_type_must_be_one_of_the_spec(client, signed_in):
    _, token = signed_in("a@example.com")
    res = client.post("/webhooks", headers=auth(token), json={"url": "http://127.0.0.1:9/a", "eventType": "x"})
    assert res.status_code == 400 and "eventType" in res.get_json()["error"]["details"]["field_errors"]


def test_webhooks_per_user_are_capped(app, client, signed_in):
    app.config["WEBHOOKS_PER_USER"] = 2
    _, token = signed_in("a@example.com")
    for _ in range(2):
        assert client.post("/webhooks", headers=auth(token), json={"url": "http://127.0.0.1:9/a"}).status_code == 201
    res = client.post("/webhooks", headers=auth(token), json={"url": "http://127.0.0.1:9/a"})
    assert res.status_code == 409 and res.get_json()["error"]["code"] == "WEBHOOK_LIMIT_REACHED"


def test_the_secret_is_stored_encrypted(app, client, signed_in):
    from app.notify.models import Webhook
    _, token = signed_in("a@example.com")
    secret = client.post("/webhooks", headers=auth(token), json={"url": "http://127.0.0.1:9/a"}).get_json()["secret"]
    stored = Webhook.query.one().secret_encrypted
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
