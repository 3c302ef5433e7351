"""Worker API benchmark: the stack as the Procfile runs it, on PostgreSQL, measured in one run.

Prints (a) jobs/s through activate + complete with 8 concurrent wrk connections (batch 10) over
one-task instances created beforehand, (b) req/s of /healthz with the same wrk, (c) RQ SimpleWorker
no-op jobs/s on the same Redis, (d) wake latency p50/p99 from the start-instance request to the
job reaching an already-waiting worker, (e) server CPU ms per job (gunicorn + the database's
backends, from /proc), wrk's own CPU share, and the target ratios.

(a), (b) and (c) are measured in rounds, each half of (b), then (a), the other half of (b), then
(c), back to back, and the ratios are taken within a round: the machine is shared, and its speed
drifts by 20 % and more within a minute, which moves a ratio of figures measured a minute apart as
much as any code change. (b) brackets (a) so that a drift during the round weighs on both. The
summary gives the median of the rounds' ratios.

    .venv/bin/python bench/worker_api.py [--rounds 3] [--seconds 6] [--instances N]

Needs PostgreSQL (BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/postgres; a fresh
database is created and dropped), Redis (REDIS_URL or 127.0.0.1:6379, db 13), and wrk.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "bench")]

import psycopg  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402

from stack import ADMIN_URL, REDIS_URL, drop_database, new_database, start_web  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
JOBS_PER_SECOND_CEILING = 1500  # instances prepared per measured second, with room to spare


def cpu_ms(pids) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total * 1000 / HZ


def children(pid) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def pg_backends(admin_url, dbname) -> list[int]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,))]


def run_wrk(args, env=None) -> tuple[str, float]:
    """Run wrk; return its output and its own CPU seconds (from the kernel's rusage)."""
    proc = subprocess.Popen(["wrk", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, **(env or {})))
    out = proc.stdout.read()
    _, _, usage = os.wait4(proc.pid, 0)
    return out, usage.ru_utime + usage.ru_stime


def connection_split(base: str) -> str:
    """How the load generator's connections are spread over the web worker processes, e.g. "5:3".

    Plain gunicorn workers take connections from one listening socket, whoever accepts first, and a
    few keep-alive connections land unevenly: a process holding most of them caps the run at one
    core, whatever the code does. The Procfile's worker balances them (least_connections.py), so
    anything but an even split here is worth a look."""
    port = base.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True,
                         text=True).stdout
    counts: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[pid] = counts.get(pid, 0) + 1
    return ":".join(str(n) for n in sorted(counts.values(), reverse=True)) or "?"


def sample_later(seconds: float, probe) -> dict:
    """Run probe() once, `seconds` from now, in a thread; its result lands in the returned dict."""
    result: dict = {}
    threading.Timer(seconds, lambda: result.setdefault("value", probe())).start()
    return result


def wrk_rate(out: str) -> float:
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def prepare(db_url, redis_url, instances):
    from flask_migrate import upgrade

    from app import create_app
    from app.auth import service
    from app.engine import deploy
    from app.engine import instances as engine_instances
    from tests.engine.helpers import one_task

    app = create_app(env={"DATABASE_URL": db_url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        upgrade(revision="heads")
        _, key = service.create_key(name="bench", permissions="job,process", tenant="bench")
        deploy.deploy(tenant="bench", xml=one_task("bench", "bench"))
        deploy.deploy(tenant="bench", xml=one_task("wake", "wake"))
        started = time.perf_counter()
        for _ in range(instances):
            engine_instances.start(tenant="bench", process_id="bench")
        print(f"created {instances} one-task instances in {time.perf_counter() - started:.1f} s")
    return key


def throughput_window(db_url, since) -> tuple[int, float]:
    """Jobs activated since `since` and completed, and the seconds from the first activation to the last end."""
    with psycopg.connect(db_url.replace("+psycopg", "")) as conn:
        n, first, last = conn.execute(
            "SELECT count(*), min(activated_at), max(ended_at) FROM engine_jobs "
            "WHERE type = 'bench' AND state = 'COMPLETED' AND activated_at >= %s", (since,)).fetchone()
    return n, (last - first).total_seconds() if n else 0.0


def rq_baseline(redis_url, count) -> float:
    from rq import Queue, SimpleWorker
    from rq.serializers import JSONSerializer

    conn = redis.Redis.from_url(redis_url)
    queue = Queue("bench-noop", connection=conn, serializer=JSONSerializer)
    queue.empty()
    for _ in range(count):
        queue.enqueue("rq_noop.noop", result_ttl=60)
    worker = SimpleWorker([queue], connection=conn, serializer=JSONSerializer)
    started = time.perf_counter()
    worker.work(burst=True, logging_level="WARNING")
    elapsed = time.perf_counter() - started
    queue.empty()
    return count / elapsed


def wake_latency(base, key, samples) -> tuple[list[float], list[float]]:
    """Wake latencies, and for comparison the start requests' own response times."""
    headers = {"X-API-Key": key}
    latencies, starts = [], []
    session_wait, session_start = requests.Session(), requests.Session()
    for _ in range(samples):
        got = {}

        def wait():
            res = session_wait.post(base + "/api/v1/jobs/activate", headers=headers, timeout=30, json={
                "type": "wake", "worker": "waiter", "max_jobs": 1, "timeout": 60000, "request_timeout": 10000})
            got["at"] = time.perf_counter()
            got["jobs"] = res.json()["data"]["jobs"]

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.15)  # the waiter is parked on its notification
        sent = time.perf_counter()
        session_start.post(base + "/api/v1/process-instances", headers=headers, json={"process_id": "wake"},
                           timeout=30)
        starts.append((time.perf_counter() - sent) * 1000)
        waiter.join(15)
        if got.get("jobs"):
            latencies.append((got["at"] - sent) * 1000)
            session_start.put(f"{base}/api/v1/jobs/{got['jobs'][0]['key']}/complete", headers=headers, json={},
                              timeout=30)
    return latencies, starts


def jobs_run(web, base, key, dbname, seconds, connections=8) -> dict:
    """activate + complete under wrk (`bench/activate_complete.lua`) for `seconds`: wrk's output and
    its own CPU seconds, the wall time, the web and PostgreSQL CPU milliseconds it cost, and how wrk's
    connections were split over the web processes."""
    server = [web.pid, *children(web.pid)]
    web_before, pg_before = cpu_ms(server), cpu_ms(pg_backends(ADMIN_URL, dbname))
    wall = time.perf_counter()
    split = sample_later(1.0, lambda: connection_split(base))
    out, wrk_cpu = run_wrk(["-t2", f"-c{connections}", f"-d{seconds}s", "-s",
                            os.path.join(ROOT, "bench", "activate_complete.lua"), base],
                           env={"BENCH_API_KEY": key, "BENCH_JOB_TYPE": "bench"})
    wall = time.perf_counter() - wall
    # A backend that ended during the run takes its CPU with it: the PostgreSQL figure is a floor.
    return {"out": out, "wrk_cpu": wrk_cpu, "wall": wall, "web_ms": cpu_ms(server) - web_before,
            "pg_ms": cpu_ms(pg_backends(ADMIN_URL, dbname)) - pg_before, "split": split.get("value", "?")}


def healthz_rate(base, seconds) -> float:
    """(b): /healthz requests per second under wrk, as many connections as (a) has workers."""
    return wrk_rate(run_wrk(["-t2", "-c8", f"-d{seconds}s", base + "/healthz"])[0])


def one_round(web, base, key, db_url, dbname, redis_url, opts) -> dict:
    """(b) in two halves around (a), which is measured with the CPU it cost, then (c).

    (b) is the mean of the halves just before and just after (a). The machine is shared and its
    speed drifts within seconds (one session saw the same code cost 1.36 to 2.69 ms of CPU per job
    from round to round), so a baseline taken only before (a) let a drift land in the ratio."""
    half = max(1, opts.seconds // 2)
    before = healthz_rate(base, half)
    since = datetime.now(timezone.utc)
    run = jobs_run(web, base, key, dbname, opts.seconds)
    completed, window = throughput_window(db_url, since)
    healthz = (before + healthz_rate(base, half)) / 2
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", run["out"])
    jobs = completed / window if window else 0.0
    rq = rq_baseline(redis_url, opts.rq_jobs)
    return {"a": jobs, "b": healthz, "c": rq, "a/b": jobs / healthz, "a/c": jobs / rq, "completed": completed,
            "web": run["web_ms"] / max(completed, 1), "pg": run["pg_ms"] / max(completed, 1),
            "wrk": run["wrk_cpu"] / run["wall"] * 100, "errors": int(errors.group(1)) if errors else 0,
            "split": run["split"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (b), (a), (c); ratios are per round")
    parser.add_argument("--seconds", type=int, default=6, help="length of each wrk run")
    parser.add_argument("--instances", type=int, default=None,
                        help="one-task instances created beforehand (default: enough that wrk never runs out)")
    parser.add_argument("--rq-jobs", type=int, default=3000)
    parser.add_argument("--wake-samples", type=int, default=100)
    opts = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is required (apt-get install wrk)")
    instances = opts.instances or opts.rounds * opts.seconds * JOBS_PER_SECOND_CEILING
    redis_url = REDIS_URL
    dbname, db_url = new_database()
    web = None
    try:
        key = prepare(db_url, redis_url, instances)
        web, base = start_web(db_url, redis_url)
        # warm both workers (definition caches, connection pools)
        for _ in range(20):
            requests.post(base + "/api/v1/jobs/activate", headers={"X-API-Key": key}, timeout=10,
                          json={"type": "none", "worker": "warm", "request_timeout": 0})
        rounds = []
        print()
        for n in range(opts.rounds):
            r = one_round(web, base, key, db_url, dbname, redis_url, opts)
            rounds.append(r)
            print(f"round {n}: (a) {r['a']:5.0f} jobs/s  (b) {r['b']:5.0f} req/s  (c) {r['c']:4.0f} jobs/s  "
                  f"a/b {r['a/b']:.3f}  a/c {r['a/c']:.2f}  (e) {r['web'] + r['pg']:.2f} ms/job (web {r['web']:.2f}, "
                  f"postgres {r['pg']:.2f})  wrk {r['wrk']:.0f}%  split {r['split']}  non-2xx {r['errors']}")
        latencies, starts = wake_latency(base, key, opts.wake_samples)
        p50 = statistics.median(latencies)
        p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) >= 2 else latencies[0]

        def median(name):
            return statistics.median(r[name] for r in rounds)

        print()
        print(f"(a) activate+complete: {median('a'):8.0f} jobs/s  (median of {len(rounds)} rounds of "
              f"{opts.seconds} s; {sum(r['completed'] for r in rounds)} jobs; "
              f"non-2xx: {sum(r['errors'] for r in rounds)})")
        print(f"(b) /healthz:          {median('b'):8.0f} req/s")
        print(f"(c) RQ SimpleWorker:   {median('c'):8.0f} jobs/s (no-op, same Redis)")
        print(f"(d) wake latency:      p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(latencies)} samples; the start "
              f"request's own response: p50 {statistics.median(starts):.1f} ms, max {max(starts):.1f} ms)")
        print(f"(e) server CPU:        {median('web') + median('pg'):.2f} ms/job "
              f"(web {median('web'):.2f}, postgres {median('pg'):.2f})")
        print(f"    wrk's own CPU:     {median('wrk'):.0f}% of one core during (a) ({os.cpu_count()} cores)")
        if sum(r["completed"] for r in rounds) >= instances:
            print("    warning: every instance was completed before wrk stopped, so (a) includes the drain "
                  "and (e) empty activations: raise --instances")
        print()
        print(f"a/c = {median('a/c'):.2f}  (target >= 2)   a/b = {median('a/b'):.3f}  (target >= 0.15)   "
              f"p99 wake {p99:.1f} ms (target <= 50)   (ratios: median of the rounds' own)")
    finally:
        if web is not None:
            os.killpg(web.pid, 15)
            web.wait(20)
        drop_database(dbname)


if __name__ == "__main__":
    main()
