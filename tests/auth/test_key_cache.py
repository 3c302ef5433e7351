"""Checked API keys are remembered per process, and revocation still takes effect at once everywhere."""
import time

import pytest
import requests
from sqlalchemy import event

from app.auth import key_cache


@pytest.fixture
def key_lookups(app):
    """How many times the api_keys table is read."""
    from app.extensions import db
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM api_keys" in statement:
            seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)


def _listening(app) -> bool:
    deadline = time.time() + 5
    while time.time() < deadline:
        if key_cache.cache.usable(app.config["REDIS_URL"]):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("seconds, lookups", [(10, 1), (0, 5)], ids=["cached", "cache-off"])
def test_a_worker_s_key_is_read_from_the_database_once(app, client, make_key, key_lookups, monkeypatch,
                                                       seconds, lookups):
    monkeypatch.setitem(app.config, "API_KEY_CACHE_SECONDS", seconds)
    headers = {"X-API-Key": make_key("job")}
    assert _listening(app)
    for _ in range(5):
        assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    assert len(key_lookups) == lookups


def test_an_entry_expires(app, client, make_key, key_lookups, monkeypatch):
    monkeypatch.setitem(app.config, "API_KEY_CACHE_SECONDS", 1)
    headers = {"X-API-Key": make_key("job")}
    assert _listening(app)
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    time.sleep(1.1)
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    assert len(key_lookups) == 2


def test_a_process_cut_off_from_redis_does_not_serve_from_its_cache():
    cut_off = key_cache.KeyCache()
    assert cut_off.usable("redis://127.0.0.1:1/0") is False  # nothing listens on port 1
    time.sleep(0.3)
    assert cut_off.usable("redis://127.0.0.1:1/0") is False


def test_a_lookup_that_raced_a_revocation_is_not_stored():
    cache = key_cache.KeyCache()
    generation = cache.generation
    cache.drop(7)  # the revocation lands while the lookup is on its way
    entry = key_cache.Entry(identity=None, expires=time.monotonic() + 60, last_used_at=None)
    cache.put(("db", "digest"), entry, generation)
    assert cache.get(("db", "digest")) is None


def test_revoking_a_key_stops_it_in_every_web_process(app, make_key, service_env, tmp_path):
    """Two gunicorn workers have the key cached; a revocation from this process reaches both."""
    from app.auth import service
    from tests import support

    raw = make_key("job")
    headers = {"X-API-Key": raw, "Connection": "close"}  # a new connection each time: either worker answers
    proc, base = support.start_web(service_env, str(tmp_path / "web.log"), workers=2)
    try:
        for _ in range(40):  # both workers now hold the key
            assert requests.get(base + "/api/v1/jobs", headers=headers, timeout=10).status_code == 200
        service.revoke_key(service.list_keys()[0].id)
        revoked_at = time.monotonic()
        answers = []
        while len(answers) < 30:
            answers.append(requests.get(base + "/api/v1/jobs", headers=headers, timeout=10))
            if answers[-1].status_code == 200:
                assert time.monotonic() - revoked_at < 1.0, "a web process still accepts the revoked key"
                answers.clear()
        assert {(a.status_code, a.json()["error"]["code"]) for a in answers} == {(401, "UNAUTHORIZED")}
    finally:
        proc.stop()
