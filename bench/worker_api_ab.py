"""Interleaved A/B of the worker API between git revisions, on one prepared database.

This 2-core machine is shared and noisy: two runs of `bench/worker_api.py` on the same code differ
by 10 % and more, so a 5 % change cannot be seen in separate runs. This checks out each revision
in a temporary git worktree, prepares one database with enough one-task instances for every run,
and then runs the revisions in turn, round after round (A B A B …): each run starts the web
process from that revision's worktree as the Procfile does (this checkout's venv), measures
/healthz with wrk for 3 s, then activate + complete (`bench/activate_complete.lua`) for
`--seconds`, and reads CPU from /proc. Prints each run, then medians per revision.

    .venv/bin/python bench/worker_api_ab.py HEAD~1 HEAD [--rounds 3] [--seconds 4] [--connections 8]

The revisions must share the database schema (the database is migrated by this checkout).
Needs what bench/worker_api.py needs: PostgreSQL, Redis, wrk.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "bench")]

import psycopg  # noqa: E402
import requests  # noqa: E402

import worker_api as wa  # noqa: E402
from stack import REDIS_URL, drop_database, new_database, start_web  # noqa: E402


def completed(db_url) -> int:
    with psycopg.connect(db_url.replace("+psycopg", "")) as conn:
        return conn.execute("SELECT count(*) FROM engine_jobs WHERE state = 'COMPLETED'").fetchone()[0]


def one_run(tree, db_url, dbname, key, seconds, connections=8) -> dict:
    web, base = start_web(db_url, REDIS_URL, cwd=tree)
    try:
        for _ in range(20):  # warm both workers
            requests.post(base + "/api/v1/jobs/activate", headers={"X-API-Key": key}, timeout=10,
                          json={"type": "none", "worker": "warm", "request_timeout": 0})
        healthz = wa.healthz_rate(base, 3)
        done_before = completed(db_url)
        run = wa.jobs_run(web, base, key, dbname, seconds, connections)
        done, wall = completed(db_url) - done_before, run["wall"]
        requests_sent = int(re.search(r"(\d+) requests in", run["out"]).group(1))
        return {"jobs/s": done / wall, "healthz": healthz, "a/b": done / wall / healthz,
                "web ms/job": run["web_ms"] / max(done, 1), "pg ms/job": run["pg_ms"] / max(done, 1),
                "web ms/req": run["web_ms"] / max(requests_sent, 1), "split": run["split"]}
    finally:
        os.killpg(web.pid, 15)
        web.wait(20)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("revisions", nargs="+", help="git revisions to compare (two or more)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8,
                        help="wrk connections, each a worker activating and completing (the issue's bench: 8)")
    opts = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is required (apt-get install wrk)")
    scratch = tempfile.mkdtemp(prefix="conveyor-ab-")
    trees = {}
    dbname, db_url = new_database()
    try:
        for i, rev in enumerate(opts.revisions):
            trees[rev] = os.path.join(scratch, f"{i}")
            subprocess.run(["git", "worktree", "add", "-q", "--detach", trees[rev], rev], cwd=ROOT, check=True)
        runs = opts.rounds * len(opts.revisions)
        key = wa.prepare(db_url, REDIS_URL, runs * opts.seconds * wa.JOBS_PER_SECOND_CEILING)
        results = {rev: [] for rev in opts.revisions}
        for round_ in range(opts.rounds):
            for rev in opts.revisions:
                r = one_run(trees[rev], db_url, dbname, key, opts.seconds, opts.connections)
                results[rev].append(r)
                print(f"{rev:>12} round {round_}: " + "  ".join(
                    f"{k} {v}" if isinstance(v, str) else f"{k} {v:.3f}" if v < 10 else f"{k} {v:.0f}"
                    for k, v in r.items()), flush=True)
        print()
        for rev, rs in results.items():
            print(f"{rev:>12} median: " + "  ".join(
                f"{k} {statistics.median(r[k] for r in rs):.3f}" if rs[0][k] < 10
                else f"{k} {statistics.median(r[k] for r in rs):.0f}" for k in rs[0] if k != "split"))
    finally:
        drop_database(dbname)
        for tree in trees.values():
            subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=ROOT, check=False)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
