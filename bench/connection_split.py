"""How wrk's keep-alive connections land on the two web processes: gunicorn's gevent worker against
least_connections.LeastConnectionsWorker (the Procfile's), in one run.

Both servers run side by side. Each round runs wrk (8 connections, /healthz) for one second on one
and then the other, and reads, half-way through, how many connections each web process holds (`ss`).
Prints the splits seen for each worker class, the share of rounds split evenly, and /healthz req/s
of each (the balancing costs nothing per request).

    .venv/bin/python bench/connection_split.py [--rounds 30] [--connections 8]

Needs wrk and ss; Redis (REDIS_URL or 127.0.0.1:6379, db 13). The app runs on a throwaway SQLite file.
"""
import argparse
import collections
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "bench")]

from stack import REDIS_URL, start_web  # noqa: E402
from worker_api import connection_split, run_wrk, sample_later, wrk_rate  # noqa: E402


CLASSES = ("gevent", "least_connections.LeastConnectionsWorker")


def measure(db_url: str, rounds: int, connections: int) -> dict:
    """Both web servers run side by side, and their rounds alternate: the machine's drift hits both."""
    servers = {cls: start_web(db_url, REDIS_URL, GUNICORN_WORKER_CLASS=cls) for cls in CLASSES}
    results = {cls: (collections.Counter(), []) for cls in CLASSES}
    try:
        time.sleep(3)  # every worker loaded: start_web returns when the first answers
        for _ in range(rounds):
            for cls, (_, base) in servers.items():
                split = sample_later(0.5, lambda: connection_split(base))
                out, _ = run_wrk(["-t2", f"-c{connections}", "-d1s", base + "/healthz"])
                time.sleep(0.2)
                results[cls][0][split.get("value", "?")] += 1
                results[cls][1].append(wrk_rate(out))
    finally:
        for web, _ in servers.values():
            os.killpg(web.pid, 15)
            web.wait(20)
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=8)
    opts = parser.parse_args()
    even = f"{opts.connections // 2}:{opts.connections - opts.connections // 2}"
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/split.db"
        from flask_migrate import upgrade

        from app import create_app
        with create_app(env={"DATABASE_URL": db_url, "REDIS_URL": REDIS_URL, "LOG_LEVEL": "WARNING"}).app_context():
            upgrade(revision="heads")
        results = measure(db_url, opts.rounds, opts.connections)
    print()
    for cls, (splits, rates) in results.items():
        share = splits[even] / opts.rounds
        print(f"{cls:42s} even ({even}) in {share:4.0%} of {opts.rounds} rounds; splits {dict(splits.most_common())}; "
              f"/healthz median {statistics.median(rates):.0f} req/s")
    (g_splits, g_rates), (l_splits, l_rates) = results.values()
    print(f"\nleast connections / gevent: even rounds {l_splits[even] / max(g_splits[even], 1):.2f}x, "
          f"/healthz {statistics.median(l_rates) / statistics.median(g_rates):.2f}x")


if __name__ == "__main__":
    main()
