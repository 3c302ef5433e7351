"""Sign in and out through the dashboard's forms; pages behind it redirect to sign in."""
from tests.dashboard.conftest import assert_valid_html


def test_the_sign_in_page_is_valid_html_with_a_labelled_form(client):
    res = client.get("/dashboard/login")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    assert_valid_html(html)
    assert 'for="email"' in html and 'for="password"' in html


def test_a_signed_out_visitor_is_sent_to_sign_in_and_back_afterwards(client, make_user):
    user = make_user()
    res = client.get("/dashboard/projects?x=1")
    assert res.status_code == 302 and "/dashboard/login?next=" in res.headers["Location"]
    res = client.post("/dashboard/login", data={"email": user.email, "password": user.password,
                                                "next": "/dashboard/projects?x=1"})
    assert res.status_code == 302 and res.headers["Location"] == "/dashboard/projects?x=1"


def test_signing_in_never_redirects_to_another_site(client, make_user):
    user = make_user()
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        res = client.post("/dashboard/login", data={"email": user.email, "password": user.password, "next": target})
        assert res.headers["Location"] == "/dashboard/jobs"


def test_a_wrong_password_is_shown_in_the_page_not_as_an_error_page(client, make_user):
    user = make_user()
    res = client.post("/dashboard/login", data={"email": user.email, "password": "wrong password"})
    assert res.status_code == 401
    html = res.get_data(as_text=True)
    assert_valid_html(html)
    assert "Invalid e-mail or password" in html and 'role="alert"' in html and user.email in html


def test_an_empty_form_names_each_missing_field(client):
    res = client.post("/dashboard/login", data={})
    html = res.get_data(as_text=True)
    assert res.status_code == 400
    assert "Enter your e-mail address" in html and "Enter your password" in html


def test_signing_out_revokes_the_login_so_the_old_cookie_stops_working(client, make_user):
    user = make_user()
    client.post("/dashboard/login", data={"email": user.email, "password": user.password})
    cookie = client.get_cookie("session")
    assert client.get("/dashboard/jobs").status_code == 200
    assert client.post("/dashboard/logout").status_code == 302
    client.set_cookie("session", cookie.value)  # replay the cookie from before sign-out
    res = client.get("/dashboard/jobs")
    assert res.status_code == 302 and "/dashboard/login" in res.headers["Location"]


def test_the_socket_token_in_the_page_is_an_access_token_for_this_login(client, make_user):
    user = make_user()
    client.post("/dashboard/login", data={"email": user.email, "password": user.password})
    html = client.get("/dashboard/jobs").get_data(as_text=True)
    token = html.split('name="ws-token" content="')[1].split('"')[0]
    res = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 200 and res.get_json()["email"] == user.email
    fresh = client.post("/dashboard/socket-token").get_json()["token"]
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_the_session_cookie_is_secure_outside_development(app):
    from app import config
    cfg = config.load({"CONVEYOR_ENV": "production", "SECRET_KEY": "s" * 40, "TOKEN_SECRET": "t" * 40,
                       "REFRESH_TOKEN_SECRET": "r" * 40, "DATABASE_URL": "postgresql://db/x"})
    assert cfg["SESSION_COOKIE_SECURE"] and cfg["SESSION_COOKIE_HTTPONLY"] and cfg["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_too_many_sign_in_attempts_are_refused_in_the_page(app, client, make_user):
    import uuid
    user = make_user(email=f"rl-{uuid.uuid4().hex[:8]}@example.com")  # the limit counts per address and e-mail
    app.config["LOGIN_RATE_LIMIT"] = "2/minute"
    for _ in range(2):
        assert client.post("/dashboard/login", data={"email": user.email, "password": "nope"}).status_code == 401
    res = client.post("/dashboard/login", data={"email": user.email, "password": user.password})
    html = res.get_data(as_text=True)
    assert res.status_code == 429 and "Too many sign-in attempts" in html
    assert_valid_html(html)


def test_a_nul_character_in_a_form_is_a_400_page_not_a_server_error(client, make_user):
    user = make_user()
    res = client.post("/dashboard/login", data={"email": user.email + "\x00", "password": user.password})
    assert res.status_code == 400
    assert_valid_html(res.get_data(as_text=True))
