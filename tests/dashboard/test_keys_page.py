"""API keys page (admins): create shown once, list with last use, revoke."""


def test_an_admin_creates_a_key_that_is_shown_once_and_works(client, make_user, sign_in, page_ok):
    sign_in(make_user(admin=True))
    assert "No API keys yet" in page_ok("/dashboard/keys")
    res = client.post("/dashboard/keys", data={"name": "billing", "tenant": "acme", "permissions": ["job", "process"]})
    assert res.status_code == 201
    html = res.get_data(as_text=True)
    secret = html.split('data-role="secret"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert secret.startswith("cvk_") and "will not be shown again" in html
    assert client.get("/api/v1/jobs", headers={"X-API-Key": secret}).status_code == 200
    listing = page_ok("/dashboard/keys")
    assert secret not in listing and "billing" in listing and "acme" in listing and "job, process" in listing


def test_a_key_without_a_name_or_permission_is_refused_in_the_page(client, make_user, sign_in):
    sign_in(make_user(admin=True))
    res = client.post("/dashboard/keys", data={"name": "", "tenant": ""})
    html = res.get_data(as_text=True)
    assert res.status_code == 400 and "Give the key a name" in html and 'aria-invalid="true"' in html
    res = client.post("/dashboard/keys", data={"name": "x"})
    assert res.status_code == 400 and "Choose from" in res.get_data(as_text=True)


def test_revoking_a_key_stops_it_and_says_so(client, make_user, make_key, sign_in, page_ok):
    sign_in(make_user(admin=True))
    raw = make_key("job")
    client.get("/api/v1/jobs", headers={"X-API-Key": raw})
    html = page_ok("/dashboard/keys")
    assert "never" not in html.split("test-key")[1].split("</tr>")[0]  # last use is shown
    key_id = html.split('data-key-id="')[1].split('"')[0]
    res = client.post(f"/dashboard/keys/{key_id}/revoke", follow_redirects=True)
    assert "revoked" in res.get_data(as_text=True)
    assert client.get("/api/v1/jobs", headers={"X-API-Key": raw}).status_code == 401


def test_the_keys_page_is_not_found_for_a_non_admin(client, make_user, sign_in):
    sign_in(make_user())
    assert client.get("/dashboard/keys").status_code == 404
    assert client.post("/dashboard/keys", data={"name": "x", "permissions": "job"}).status_code == 404
    assert "API keys" not in client.get("/dashboard/jobs").get_data(as_text=True)


def test_revoking_an_unknown_key_shows_a_not_found_page(client, make_user, sign_in):
    sign_in(make_user(admin=True))
    res = client.post("/dashboard/keys/999/revoke")
    assert res.status_code == 404 and "API key not found" in res.get_data(as_text=True)
