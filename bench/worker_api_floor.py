"""The floor under the worker API bench: Conveyor against raw SQL behind bare Flask, in one run.

Issue 3 calibrates its target a/b >= 0.15 on a figure measured elsewhere: "a bare raw-SQL activate
+ complete behind Flask, with no engine, reached 1,090 jobs/s — 0.28 × the trivial endpoint". This
re-measures that floor here, next to Conveyor, with the same gunicorn worker class, the same wrk
script (8 connections, batches of 10) and the same database server, in turns (floor, Conveyor,
floor, …) so the machine's drift falls on both:

    .venv/bin/python bench/worker_api_floor.py [--rounds 2] [--seconds 6] [--jobs 6000]

For each stack: jobs/s through activate + complete, its own /healthz req/s, their ratio, and the
web and PostgreSQL CPU per job. The floor app is bench/floor_app.py.

With --transaction a third stack joins each round, "floor-tx": the floor completing in a transaction
of four round trips (BEGIN, SELECT … FOR UPDATE, UPDATE, COMMIT) as Conveyor's completion does,
instead of one autocommit UPDATE. The difference is what three round trips per job cost here: the
most that merging statements or transactions (group commit) could win back.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "bench")]

import psycopg  # noqa: E402
import requests  # noqa: E402

import floor_app  # noqa: E402
from stack import ADMIN_URL, REDIS_URL, drop_database, new_database, start_web  # noqa: E402
from tests.support import free_port  # noqa: E402
from worker_api import children, cpu_ms, pg_backends, prepare, run_wrk, wrk_rate  # noqa: E402

LUA = os.path.join(ROOT, "bench", "activate_complete.lua")


def start_floor(plain_url, key, in_transaction=False):
    port = free_port()
    env = dict(os.environ, FLOOR_DATABASE_URL=plain_url, FLOOR_API_KEY=key,
               PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "bench")]))
    if in_transaction:
        env["FLOOR_COMPLETE_IN_TRANSACTION"] = "1"
    web = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-k", "gevent", "-w", "2",
                            "--worker-connections", "2000", "-b", f"127.0.0.1:{port}", "floor_app:create_app()"],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if requests.get(base + "/healthz", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.2)
    return web, base


def completed_since(plain_url, table, since) -> tuple[int, float]:
    """Jobs activated after `since` and completed: their count and the span from first activation to last end."""
    with psycopg.connect(plain_url) as conn:
        n, first, last = conn.execute(
            f"SELECT count(*), min(activated_at), max(ended_at) FROM {table} "
            "WHERE type = 'bench' AND state = 'COMPLETED' AND activated_at >= %s", (since,)).fetchone()
    return n, (last - first).total_seconds() if n else 0.0


def measure(name, web, base, key, plain_url, dbname, table, seconds) -> dict:
    try:
        for _ in range(20):  # warm both workers' connections
            requests.post(base + "/api/v1/jobs/activate", headers={"X-API-Key": key}, timeout=10,
                          json={"type": "none", "worker": "warm", "timeout": 1000, "request_timeout": 0})
        common = ["-t2", "-c8", f"-d{seconds}s"]
        healthz = wrk_rate(run_wrk([*common, base + "/healthz"])[0])
        server, backends = [web.pid, *children(web.pid)], pg_backends(ADMIN_URL, dbname)
        web_before, pg_before = cpu_ms(server), cpu_ms(backends)
        with psycopg.connect(plain_url) as conn:
            since = conn.execute("SELECT now()").fetchone()[0]
        run_wrk([*common, "-s", LUA, base], env={"BENCH_API_KEY": key, "BENCH_JOB_TYPE": "bench"})
        web_ms, pg_ms = cpu_ms(server) - web_before, cpu_ms(pg_backends(ADMIN_URL, dbname)) - pg_before
        n, window = completed_since(plain_url, table, since)
    finally:
        os.killpg(web.pid, 15)
        web.wait(20)
    rate = n / window if window else 0.0
    return {"stack": name, "jobs_s": rate, "healthz": healthz, "ratio": rate / healthz,
            "web_ms": web_ms / max(n, 1), "pg_ms": pg_ms / max(n, 1), "cpu_ms": (web_ms + pg_ms) / max(n, 1)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=6000,
                        help="Conveyor instances per round (the floor gets 4x, 8x with --transaction)")
    parser.add_argument("--transaction", action="store_true", help="also run floor-tx (see above) each round")
    opts = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is required (apt-get install wrk)")
    dbname, db_url = new_database()
    plain_url = db_url.replace("+psycopg", "")
    try:
        key = prepare(db_url, REDIS_URL, opts.jobs * opts.rounds)
        with psycopg.connect(plain_url, autocommit=True) as conn:
            # about 3x faster than Conveyor: never run dry
            floor_app.fill(conn, "bench", (8 if opts.transaction else 4) * opts.jobs * opts.rounds)
            conn.execute("ANALYZE")
        results = []
        for _ in range(opts.rounds):
            results.append(measure("floor", *start_floor(plain_url, key), key, plain_url, dbname, "floor_jobs",
                                   opts.seconds))
            if opts.transaction:
                results.append(measure("floor-tx", *start_floor(plain_url, key, in_transaction=True), key,
                                       plain_url, dbname, "floor_jobs", opts.seconds))
            results.append(measure("conveyor", *start_web(db_url, REDIS_URL), key, plain_url, dbname, "engine_jobs",
                                   opts.seconds))
        print(f"\n{'stack':10} {'jobs/s':>8} {'/healthz':>9} {'a/b':>6} {'web ms/job':>11} {'pg ms/job':>10}")
        for r in results:
            print(f"{r['stack']:10} {r['jobs_s']:8.0f} {r['healthz']:9.0f} {r['ratio']:6.3f} {r['web_ms']:11.2f} "
                  f"{r['pg_ms']:10.2f}")
        median = {s: {f: statistics.median(r[f] for r in results if r["stack"] == s)
                      for f in ("jobs_s", "healthz", "ratio", "cpu_ms")} for s in {r["stack"] for r in results}}
        floor, ours = median["floor"], median["conveyor"]
        print(f"\nmedians: floor a/b {floor['ratio']:.3f} (issue 3 quotes 0.28 for its floor); "
              f"Conveyor a/b {ours['ratio']:.3f} (target 0.15); "
              f"Conveyor jobs/s ÷ floor jobs/s {ours['jobs_s'] / floor['jobs_s']:.2f}; "
              f"Conveyor jobs/s ÷ floor /healthz {ours['jobs_s'] / floor['healthz']:.3f}")
        if opts.transaction:
            tx = median["floor-tx"]
            print(f"floor-tx jobs/s ÷ floor jobs/s {tx['jobs_s'] / floor['jobs_s']:.2f}; one round trip costs "
                  f"{(tx['cpu_ms'] - floor['cpu_ms']) / 3 * 1000:.0f} µs of server CPU (web + PostgreSQL; "
                  f"medians, ms/job {floor['cpu_ms']:.2f} → {tx['cpu_ms']:.2f})")
    finally:
        drop_database(dbname)


if __name__ == "__main__":
    main()
