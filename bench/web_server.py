"""Which gunicorn worker class holds long-polling workers best? Measured, not assumed.

Runs the web process as the Procfile does (gunicorn -c gunicorn.conf.py, WEB_CONCURRENCY=2) once
with `gevent` and once with `gthread` (GUNICORN_THREADS threads per process), on PostgreSQL when it
answers (else SQLite) and a real Redis, and drives both with wrk:

  trivial  — GET /healthz, 64 connections: plain request throughput.
  waiting  — N connections each long-polling POST /api/v1/jobs/activate for a job type that never
             has jobs (request_timeout W ms): how many waiting workers each class can serve at once.
             With capacity for all N, each connection completes one request every W ms.

Prints each figure and the gthread/gevent ratios.
Usage: python bench/web_server.py [--waiters 400] [--seconds 20] [--wait-ms 8000]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests import support  # noqa: E402

LUA_ACTIVATE = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
wrk.body = '{"type": "never-any-jobs", "worker": "bench", "max_jobs": 1, "request_timeout": %d}'
"""


def wrk(url, connections, seconds, script=None, env=None):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, env=env).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    done = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    return {"rps": rps, "requests": done, "p99": p99.group(1) if p99 else "?"}


def rss_mb(pid) -> float:
    out = subprocess.run(["ps", "-o", "rss=", "--ppid", str(pid), "-p", str(pid)], capture_output=True, text=True)
    return sum(int(x) for x in out.stdout.split()) / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--waiters", type=int, default=400)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--wait-ms", type=int, default=8000,
                        help="long enough that waiting, not each poll's own CPU, decides the figure")
    args = parser.parse_args()
    redis = support.RedisForTests()
    pg = support.PostgresForTests()
    tmp = tempfile.mkdtemp()
    db_url = pg.start() if pg.available else f"sqlite:///{tmp}/bench.db"
    env = support.service_env(db_url, redis.url)
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    try:
        subprocess.run([flask, "db", "upgrade", "heads"], env=env, cwd=support.ROOT, check=True, capture_output=True)
        out = subprocess.run([flask, "keys", "create", "--name", "bench", "--permissions", "job"], env=env,
                             cwd=support.ROOT, check=True, capture_output=True, text=True).stdout
        key = out.strip().splitlines()[-1]
        script = os.path.join(tmp, "activate.lua")
        with open(script, "w") as f:
            f.write(LUA_ACTIVATE % args.wait_ms)
        results = {}
        for cls in ("gevent", "gthread"):
            proc, base = support.start_web(dict(env, GUNICORN_WORKER_CLASS=cls, API_RATE_LIMIT="10000000/minute"),
                                           os.path.join(tmp, f"web-{cls}.log"), workers=2)
            try:
                wrk(base + "/healthz", 16, 2)  # warm up
                trivial = wrk(base + "/healthz", 64, args.seconds)
                waiting = wrk(base + "/api/v1/jobs/activate", args.waiters, args.seconds, script,
                              env=dict(os.environ, BENCH_KEY=key))
                time.sleep(0.5)
                results[cls] = {"trivial": trivial, "waiting": waiting, "rss": rss_mb(proc.proc.pid)}
            finally:
                proc.stop()
        ideal = args.waiters * args.seconds * 1000 / args.wait_ms
        print(f"database: {'postgresql' if pg.available else 'sqlite'}; {args.waiters} waiters x {args.seconds} s,"
              f" request_timeout {args.wait_ms} ms (ideal {ideal:.0f} answered polls)")
        print(f"{'class':<8} {'trivial req/s':>14} {'polls answered':>15} {'of ideal':>9} {'poll p99':>9} {'RSS MB':>7}")
        for cls, r in results.items():
            print(f"{cls:<8} {r['trivial']['rps']:>14.0f} {r['waiting']['requests']:>15} "
                  f"{r['waiting']['requests'] / ideal:>9.2f} {r['waiting']['p99']:>9} {r['rss']:>7.0f}")
        g, t = results["gevent"], results["gthread"]
        print(f"ratios gthread/gevent: trivial {t['trivial']['rps'] / g['trivial']['rps']:.2f}, "
              f"polls answered {t['waiting']['requests'] / max(1, g['waiting']['requests']):.2f}")
    finally:
        pg.close()
        redis.close()


if __name__ == "__main__":
    main()
