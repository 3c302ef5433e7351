"""psycopg under gevent waits on the hub (app/green_wait.py): queries cooperate, big reads and
writes, errors and a later query on the same connection all behave as with psycopg's own waits."""
import os
import subprocess
import sys
import textwrap

import pytest

from tests.support import ROOT

_SCRIPT = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import sys, time
    import gevent, psycopg
    from psycopg import waiting
    from app import create_app, green_wait

    create_app(env={"DATABASE_URL": sys.argv[1], "REDIS_URL": sys.argv[2], "LOG_LEVEL": "WARNING"})
    assert waiting.wait is green_wait.wait_on_hub, waiting.wait
    url = sys.argv[1].replace("+psycopg", "")

    def sleepy(seconds):
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT pg_sleep(%s), %s::int", (seconds, 7)).fetchone()[1]

    ticks = []
    def ticker():
        for _ in range(5):
            ticks.append(time.monotonic())
            gevent.sleep(0.05)

    started = time.monotonic()
    jobs = [gevent.spawn(sleepy, 0.4), gevent.spawn(sleepy, 0.4), gevent.spawn(ticker)]
    gevent.joinall(jobs, raise_error=True)
    elapsed = time.monotonic() - started
    assert [j.value for j in jobs[:2]] == [7, 7]
    assert elapsed < 0.75, f"two 0.4 s queries took {elapsed:.2f} s: they did not run side by side"
    assert len(ticks) == 5 and ticks[-1] - started < 0.4, "the ticker waited for the queries"

    with psycopg.connect(url) as conn:
        big = "x" * 6_000_000  # several socket writes and reads each way
        assert conn.execute("SELECT length(%s::text), repeat('y', 5000000)", (big,)).fetchone()[0] == 6_000_000
        try:
            conn.execute("SELECT 1 / 0")
        except psycopg.errors.DivisionByZero:
            conn.rollback()
        else:
            raise AssertionError("no error")
        assert conn.execute("SELECT 2").fetchone()[0] == 2
    print("ok")
""")


def test_queries_under_gevent_wait_on_the_hub_and_cooperate(database_url, redis_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("psycopg is the PostgreSQL driver")
    out = subprocess.run([sys.executable, "-c", _SCRIPT, database_url, redis_url], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_without_gevent_psycopg_keeps_its_own_wait():
    code = ("import psycopg.waiting as w; before = w.wait; from app import green_wait; "
            "assert green_wait.install() is False and w.wait is before; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
