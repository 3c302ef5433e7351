"""How fast does a project import run, next to a plain bulk insert of the same rows? Measured in one run.

Starts the web process (gunicorn as the Procfile runs it) and an RQ worker (`python worker.py`) on
PostgreSQL when it answers (else SQLite) and a real Redis, then:

  baseline — the same N rows, parsed in memory, inserted into `project_records` with plain
             SQLAlchemy `insert()` executemany in chunks of 5,000, one transaction.
  service  — POST /api/projects/{id}/imports with the CSV file, polled until Completed: upload,
             queueing, parsing, key checks, chunked inserts, status and progress events.

Prints progress samples seen while polling, rows per second of both, and service/baseline.
Usage: python bench/import.py [--rows 100000]
"""
import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests import support  # noqa: E402


def make_csv(n: int) -> bytes:
    lines = ["tag,description,type,unit,range_low,range_high,area"]
    lines += [f"T-{i:07d},Transmitter {i} on line {i % 40},AI,bar,0,{i % 500},{300 + i % 3}" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


def baseline(db_url: str, redis_url: str, data: bytes) -> float:
    """Seconds for a plain SQLAlchemy bulk insert of the parsed rows (parsing not counted)."""
    import csv

    from sqlalchemy import insert

    from app import clock, create_app
    from app.auth import service as users
    from app.extensions import db
    from app.projects import service as projects
    from app.projects.models import Record

    app = create_app(env={"DATABASE_URL": db_url, "REDIS_URL": redis_url})
    with app.app_context():
        user = users.create_user(email=f"base-{uuid.uuid4().hex[:6]}@example.com", password="bench-password")
        project = projects.create(user=user, name="baseline")
        now = clock.utcnow()
        rows = [{"project_id": project.id, "key": r["tag"], "data": r, "created_at": now, "updated_at": now}
                for r in csv.DictReader(io.StringIO(data.decode()))]
        started = time.perf_counter()
        for i in range(0, len(rows), 5000):
            db.session.execute(insert(Record), rows[i:i + 5000])
        db.session.commit()
        return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    import requests

    redis = support.RedisForTests()
    pg = support.PostgresForTests()
    tmp = tempfile.mkdtemp()
    db_url = pg.start() if pg.available else f"sqlite:///{tmp}/bench.db"
    env = support.service_env(db_url, redis.url)
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    subprocess.run([flask, "--app", "wsgi", "db", "upgrade", "heads"], env=env, cwd=support.ROOT, check=True,
                   capture_output=True)
    web, base = support.start_web(env, os.path.join(tmp, "web.log"))
    worker = support.start_worker(env, os.path.join(tmp, "worker.log"))
    try:
        data = make_csv(args.rows)
        base_s = baseline(db_url, redis.url, data)
        from app import create_app
        from app.auth import service as users
        with create_app(env={"DATABASE_URL": db_url, "REDIS_URL": redis.url}).app_context():
            users.create_user(email="bench@example.com", password="bench-password", name="Bench")
        token = requests.post(base + "/auth/login", json={"email": "bench@example.com",
                                                          "password": "bench-password"}).json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}
        project = requests.post(base + "/api/projects", json={"name": "bench"}, headers=h).json()
        time.sleep(1.0)  # the worker is up and listening
        started = time.perf_counter()
        job = requests.post(f"{base}/api/projects/{project['id']}/imports", headers=h,
                            files={"file": ("tags.csv", data, "text/csv")}).json()
        samples = []
        while True:
            job = requests.get(f"{base}/api/jobs/{job['id']}", headers=h).json()
            samples.append((time.perf_counter() - started, job["status"], job["progress"]))
            if job["status"] in ("Completed", "Failed", "Cancelled"):
                break
            time.sleep(0.2)
        service_s = time.perf_counter() - started
        assert job["status"] == "Completed", job
        assert job["result"]["recordsCreated"] == args.rows, job["result"]
        print(f"database: {'postgresql' if pg.available else 'sqlite'}; rows: {args.rows}")
        print("progress samples (seconds, status, progress):")
        seen = []
        for t, status, progress in samples:
            if not seen or seen[-1][1:] != (status, progress):
                seen.append((t, status, progress))
        for t, status, progress in seen:
            print(f"  {t:6.2f}s  {status:9s} {progress:3d}%")
        print(f"baseline bulk insert: {base_s:6.2f}s  {args.rows / base_s:9.0f} rows/s")
        print(f"service import:       {service_s:6.2f}s  {args.rows / service_s:9.0f} rows/s")
        print(f"service / baseline:   {base_s / service_s:.2f}  (target >= 0.5)")
    finally:
        worker.stop()
        web.stop()
        redis.close()
        pg.close()


if __name__ == "__main__":
    main()
