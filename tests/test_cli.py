"""Users and API keys from the command line, then used over HTTP."""


def test_users_create_then_login(app, client):
    runner = app.test_cli_runner()
    res = runner.invoke(args=["users", "create", "--email", "Ops@Example.com", "--password", "s3cret-pass",
                              "--name", "Ops", "--admin"])
    assert res.exit_code == 0, res.output
    assert "(admin)" in res.output
    login = client.post("/auth/login", json={"email": "ops@example.com", "password": "s3cret-pass"})
    assert login.status_code == 200
    again = runner.invoke(args=["users", "create", "--email", "ops@example.com", "--password", "another-pass"])
    assert again.exit_code != 0 and "already exists" in again.output
    short = runner.invoke(args=["users", "create", "--email", "x@example.com", "--password", "short"])
    assert short.exit_code != 0 and "at least 8" in short.output


def test_password_is_stored_as_an_argon2_hash(app, make_user):
    from app.auth.models import User
    from app.extensions import db
    make_user(password="plain-text-pass")
    stored = db.session.query(User).one().password_hash
    assert stored.startswith("$argon2") and "plain-text-pass" not in stored


def test_keys_create_list_revoke(app, client):
    from app.auth.models import ApiKey
    from app.extensions import db
    runner = app.test_cli_runner()
    res = runner.invoke(args=["keys", "create", "--name", "mailer", "--permissions", "job,process",
                              "--tenant", "acme"])
    assert res.exit_code == 0, res.output
    raw = res.output.strip().splitlines()[-1]
    assert raw.startswith("cvk_")
    stored = db.session.query(ApiKey).one()
    assert stored.tenant == "acme" and stored.permissions == ["job", "process"]
    secret = raw.split("_", 2)[2]  # cvk_<prefix>_<secret>; the secret may itself contain "_"
    assert secret not in stored.key_hash and len(stored.key_hash) == 64
    assert client.get("/api/v1/jobs", headers={"X-API-Key": raw}).status_code == 200

    listing = runner.invoke(args=["keys", "list"])
    assert "mailer" in listing.output and "acme" in listing.output and raw not in listing.output
    assert "never" not in listing.output.splitlines()[1]  # last use recorded

    assert runner.invoke(args=["keys", "revoke", str(stored.id)]).exit_code == 0
    assert client.get("/api/v1/jobs", headers={"X-API-Key": raw}).status_code == 401
    assert "revoked" in runner.invoke(args=["keys", "list"]).output
    assert runner.invoke(args=["keys", "revoke", "999"]).exit_code != 0


def test_keys_create_refuses_unknown_permissions(app):
    res = app.test_cli_runner().invoke(args=["keys", "create", "--name", "x", "--permissions", "job,root"])
    assert res.exit_code != 0 and "root" in res.output


def test_bootstrap_creates_admin_and_key_once(app, client):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["bootstrap"])
    assert first.exit_code == 0
    text = first.output + (first.stderr if hasattr(first, "stderr") else "")
    raw = next(word for word in text.split() if word.startswith("cvk_"))
    password = text.split("password ")[1].split()[0]
    assert client.post("/auth/login", json={"email": "admin@localhost", "password": password}).status_code == 200
    assert client.get("/api/v1/jobs", headers={"X-API-Key": raw}).status_code == 200
    second = runner.invoke(args=["bootstrap"])
    assert "cvk_" not in second.output


def test_bootstrap_never_runs_in_production(app):
    app.config["PRODUCTION"] = True
    res = app.test_cli_runner().invoke(args=["bootstrap"])
    assert "skipped" in res.output
    from app.auth.models import User
    from app.extensions import db
    assert db.session.query(User).count() == 0
