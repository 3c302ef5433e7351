"""Writes to engine_jobs while `flask db upgrade` builds its indexes, on PostgreSQL.

Seeds --jobs jobs (bench/jobs_list.py's table) at migration 0005, then upgrades to the heads while
a writer updates one job every 10 ms, and prints how long the slowest update waited, also as a
ratio to the upgrade's own duration in the same run: near 1, writes stood still for the whole
upgrade (a plain CREATE INDEX); near 0, they went on (CREATE INDEX CONCURRENTLY, app/online_indexes.py).

    .venv/bin/python bench/online_indexes.py [--jobs 1000000]

Needs what bench/jobs_list.py needs: PostgreSQL and Redis.
"""
import argparse
import os
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "bench")]

import psycopg  # noqa: E402

import jobs_list  # noqa: E402
from stack import REDIS_URL, drop_database, new_database  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    args = parser.parse_args()
    name, url = new_database()
    try:
        app, _ = jobs_list.prepare(url, REDIS_URL, args.jobs, revision="0005")
        with psycopg.connect(url) as conn:
            keys = [k for (k,) in conn.execute("SELECT key FROM engine_jobs ORDER BY random() LIMIT 200")]
        waits, stop = [], threading.Event()

        def writer():
            with psycopg.connect(url, autocommit=True) as conn:
                while not stop.is_set():
                    started = time.monotonic()
                    conn.execute("UPDATE engine_jobs SET retries = retries WHERE key = %s", (keys[len(waits) % 200],))
                    waits.append(time.monotonic() - started)
                    time.sleep(0.01)

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(1)
        from flask_migrate import upgrade
        started = time.monotonic()
        with app.app_context():
            upgrade(revision="heads")
        took = time.monotonic() - started
        time.sleep(1)
        stop.set()
        thread.join()
        print(f"upgrade 0005 -> heads on {args.jobs:,} jobs: {took:.1f} s")
        print(f"updates meanwhile: {len(waits)}, median {statistics.median(waits) * 1000:.1f} ms, "
              f"slowest {max(waits) * 1000:.0f} ms = {max(waits) / took:.3f} x the upgrade")
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
