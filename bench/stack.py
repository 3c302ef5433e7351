"""What the benches share: a fresh PostgreSQL database, and the web process started as the Procfile does."""
import os
import secrets
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.support import free_port  # noqa: E402


ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")


def new_database() -> tuple[str, str]:
    """A fresh database on BENCH_DATABASE_URL's server: (its name, its URL)."""
    name = f"conveyor_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(ADMIN_URL)
    return name, urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def drop_database(name):
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_web(db_url, redis_url, cwd=ROOT, **settings) -> tuple[subprocess.Popen, str]:
    """`gunicorn -c gunicorn.conf.py wsgi:app` with two workers on a free port; returns it once /healthz answers.

    `cwd`: the checkout to serve (another revision's worktree; this checkout's venv runs it)."""
    port = free_port()
    env = dict(os.environ, DATABASE_URL=db_url, REDIS_URL=redis_url, PORT=str(port), HOST="127.0.0.1",
               WEB_CONCURRENCY="2", LOG_LEVEL="WARNING", **settings)
    web = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-c", "gunicorn.conf.py",
                            "wsgi:app"], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if requests.get(base + "/healthz", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.2)
    return web, base
