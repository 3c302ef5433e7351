"""Fixtures: every app-level test runs on SQLite and on PostgreSQL, against a real Redis."""
import os
import time

import pytest
from sqlalchemy import text

from tests import support

OUTPUT_DIR = os.path.join(support.ROOT, "test-output")
_redis = None
_pg = support.PostgresForTests()


def _redis_for_tests():
    global _redis
    if _redis is None:
        _redis = support.RedisForTests()
    return _redis


def pytest_report_header(config):
    pg = f"postgresql ({_pg.base})" if _pg.available else f"postgresql SKIPPED: {_pg.reason}; set TEST_DATABASE_URL"
    return [f"conveyor databases: sqlite, {pg}", f"conveyor redis: {os.environ.get('REDIS_URL') or 'auto'}"]


def pytest_terminal_summary(terminalreporter):
    if not _pg.available:
        terminalreporter.write_line(f"NOTE: PostgreSQL tests were skipped: {_pg.reason}", yellow=True)
    elif _redis is not None:
        terminalreporter.write_line(f"conveyor: ran on sqlite and postgresql; redis: {_redis.description}")


def pytest_sessionfinish(session, exitstatus):
    if _redis is not None:
        _redis.close()
    _pg.close()


@pytest.fixture(scope="session")
def redis_for_tests():
    return _redis_for_tests()


@pytest.fixture(scope="session")
def redis_url(redis_for_tests):
    return redis_for_tests.url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite')}/conveyor.db"
    if not _pg.available:
        pytest.skip(f"{_pg.reason}; set TEST_DATABASE_URL to run the PostgreSQL half")
    return _pg.url or _pg.start()


@pytest.fixture(scope="session")
def output_dir():
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture(scope="session")
def _session_app(database_url, redis_url):
    from flask_migrate import upgrade

    from app import create_app

    app = create_app(env={"DATABASE_URL": database_url, "REDIS_URL": redis_url},
                     overrides={"TESTING": True, "WTF_CSRF_ENABLED": False, "LOGIN_RATE_LIMIT": "1000/minute"})
    with app.app_context():
        upgrade(revision="heads")  # the real migrations, so the schema under test is the one deployments get
    return app


def _truncate(db):
    from sqlalchemy.exc import OperationalError

    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    # A worker process may still be finishing the previous test's job; its row locks can deadlock
    # with TRUNCATE's table locks. PostgreSQL picks a victim at once, so try again shortly.
    for attempt in range(20):
        try:
            if db.engine.dialect.name == "postgresql":
                db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for name in tables:
                    db.session.execute(text(f"DELETE FROM {name}"))
            db.session.commit()
            return
        except OperationalError:
            db.session.rollback()
            if attempt == 19:
                raise
            time.sleep(0.25)


@pytest.fixture
def app(_session_app):
    from app.extensions import db, get_redis

    with _session_app.app_context():
        _truncate(db)
        r = get_redis()
        for key in r.scan_iter("LIMITS:LIMITER*"):  # the `limits` library's keys (its prefix, then ours)
            r.delete(key)
        saved = dict(_session_app.config)
        yield _session_app
        db.session.rollback()
        db.session.remove()
        _session_app.config.clear()
        _session_app.config.update(saved)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_user(app):
    from app.auth import service

    def make(email="user@example.com", password="correct horse battery", name="Test User", admin=False):
        user = service.create_user(email=email, password=password, name=name, is_admin=admin)
        user.password = password
        return user
    return make


@pytest.fixture
def login(client):
    def do(user):
        res = client.post("/auth/login", json={"email": user.email, "password": user.password})
        assert res.status_code == 200, res.get_json()
        return res.get_json()
    return do


@pytest.fixture
def user_headers(make_user, login):
    def make(**kwargs):
        user = make_user(**kwargs)
        return {"Authorization": f"Bearer {login(user)['access_token']}"}
    return make


@pytest.fixture
def make_key(app):
    from app.auth import service

    def make(permissions="job", tenant="default", name="test-key"):
        _, raw = service.create_key(name=name, permissions=permissions, tenant=tenant)
        return raw
    return make


@pytest.fixture
def key_headers(make_key):
    return {"X-API-Key": make_key("job,process")}


@pytest.fixture(scope="session")
def service_env(database_url, redis_url, _session_app):
    return support.service_env(database_url, redis_url)


@pytest.fixture(scope="session")
def live_server(service_env, tmp_path_factory):
    """The web process as the Procfile runs it (gunicorn + gevent), on a free port."""
    proc, base = support.start_web(service_env, str(tmp_path_factory.mktemp("web") / "web.log"))
    yield base
    proc.stop()


@pytest.fixture(scope="session")
def rq_worker(service_env, tmp_path_factory):
    """A real forking RQ worker process on every queue, with the scheduler.

    Its project-job reconciler is kept out of the way: tests that start workers on a private Redis
    database (tests/projects) share this database, and from this worker's Redis their running jobs
    look lost (no RQ job, no liveness key), so its reconciler would fail them as "worker died"."""
    env = {**service_env, "PROJECT_JOBS_RECONCILE_SECONDS": "3600"}
    proc = support.start_worker(env, str(tmp_path_factory.mktemp("worker") / "worker.log"))
    yield proc
    proc.stop()
