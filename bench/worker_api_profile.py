"""CPU per request of the worker API's hot paths, in one process through the Flask test client.

Prints the process CPU milliseconds per request for /healthz, an activation of a batch of 10 and
a completion (one-task instances), and with --profile the top functions of the completions by CPU
time. The database is the one given (a fresh one: the tables are created by the migrations);
Redis 127.0.0.1:6379 db 12 unless REDIS_URL is set.

    .venv/bin/python bench/worker_api_profile.py postgresql+psycopg://postgres@127.0.0.1:5432/<fresh db>
    .venv/bin/python bench/worker_api_profile.py sqlite:////tmp/profile.db --profile
"""
import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("--instances", type=int, default=800)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="pstats order: cumulative or tottime")
    parser.add_argument("--route", choices=("complete", "activate"), default="complete", help="what --profile profiles")
    opts = parser.parse_args()

    from flask_migrate import upgrade

    from app import create_app
    from app.auth import service
    from app.engine import deploy, instances
    from tests.engine.helpers import one_task

    app = create_app(env={"DATABASE_URL": opts.database_url, "LOG_LEVEL": "WARNING",
                          "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12")})
    with app.app_context():
        upgrade(revision="heads")
        _, key = service.create_key(name="profile", permissions="job,process", tenant="profile")
        deploy.deploy(tenant="profile", xml=one_task("profile", "profile"))
        for _ in range(opts.instances):
            instances.start(tenant="profile", process_id="profile")
    client = app.test_client()
    headers = {"X-API-Key": key}
    activate = {"type": "profile", "worker": "w", "max_jobs": 10, "timeout": 60000, "request_timeout": 0}

    def rounds(count, profiler=None):
        spent = {"activate": [0.0, 0], "complete": [0.0, 0]}
        for _ in range(count):
            started = time.process_time()
            if profiler and opts.route == "activate":
                profiler.enable()
            jobs = client.post("/api/v1/jobs/activate", headers=headers, json=activate).get_json()["data"]["jobs"]
            if profiler and opts.route == "activate":
                profiler.disable()
            spent["activate"][0] += time.process_time() - started
            spent["activate"][1] += 1
            for job in jobs:
                started = time.process_time()
                if profiler and opts.route == "complete":
                    profiler.enable()
                res = client.put(f"/api/v1/jobs/{job['key']}/complete", headers=headers,
                                 json={"variables": {"done": True}})
                if profiler and opts.route == "complete":
                    profiler.disable()
                assert res.status_code == 200, res.get_json()
                spent["complete"][0] += time.process_time() - started
                spent["complete"][1] += 1
        return {name: total * 1000 / max(n, 1) for name, (total, n) in spent.items()}

    per_round = opts.instances // 10 // 8
    rounds(per_round)  # warm: caches, pools, compiled statements

    def healthz_ms():
        started = time.process_time()
        for _ in range(200):
            client.get("/healthz")
        return (time.process_time() - started) * 1000 / 200

    # The machine is shared: the median of five chunks is steadier than one long run.
    chunks = [(healthz_ms(), rounds(per_round)) for _ in range(5)]
    healthz = statistics.median(h for h, _ in chunks)
    measured = {name: statistics.median(c[name] for _, c in chunks) for name in ("activate", "complete")}
    print(f"CPU per request: /healthz {healthz:.2f} ms, activate (batch 10) {measured['activate']:.2f} ms, "
          f"complete {measured['complete']:.2f} ms  (complete / healthz = {measured['complete'] / healthz:.1f})")
    if opts.profile:
        profiler = cProfile.Profile(time.process_time)
        rounds(per_round * 2, profiler)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats(opts.sort)
        stats.print_stats(60)
        if os.environ.get("CALLERS"):
            stats.print_callers(os.environ["CALLERS"])
        if os.environ.get("CALLEES"):
            stats.print_callees(os.environ["CALLEES"])
        print(out.getvalue())


if __name__ == "__main__":
    main()
