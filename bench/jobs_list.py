"""Jobs list and stats on a million rows: the stack as the Procfile runs it, on PostgreSQL.

Seeds one tenant with --jobs jobs (default 1,000,000; four per instance, three processes, nine job
types of which two rare, 387 workers, over two days: mostly COMPLETED, the newest ACTIVATABLE/ACTIVE,
some in backoff, CANCELLED and ERROR_THROWN scattered, 50 FAILED with open incidents) in set-based
SQL, then measures through HTTP the p50/p95 latency of GET /api/v1/jobs (first and deep pages
following next_cursor, each filter alone) and GET /api/v1/jobs/stats (and, once, its first call in
the web process), each also as a ratio to /healthz measured in the same run. Every measured page,
and the stats' stable figures, are checked against plain SQL. Then prints EXPLAIN (ANALYZE, BUFFERS)
summaries of the statements SQLAlchemy sends for each case.

    .venv/bin/python bench/jobs_list.py [--jobs 1000000] [--samples 30] [--plans all|slow]

Needs PostgreSQL (BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/postgres; a fresh
database is created and dropped) and Redis (REDIS_URL or 127.0.0.1:6379, db 13).
"""
import argparse
import base64
import os
import signal
import statistics
import sys
import time
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "bench")]

import psycopg  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402

from stack import REDIS_URL, drop_database, new_database, start_web  # noqa: E402

TENANT = "bench"
# Three in five instances are orders, one in a thousand a refund (its two own types are rare).
PROCESSES = {"order-fulfilment": ["validate-order", "charge-card", "ship-order", "send-email"],
             "media-pipeline": ["resize-image", "render-pdf", "sync-crm", "send-email"],
             "refund": ["check-refund", "issue-refund", "sync-crm", "send-email"]}
PROCESS_OF_INSTANCE = "CASE WHEN i % 1000 = 7 THEN 2 WHEN i % 5 < 3 THEN 0 ELSE 1 END"
WORKERS_PER_TYPE = 43  # nine types: 387 workers
SPAN = "2 days"        # ~350 jobs a minute; the stats' 5-minute window holds ~550 completions
SLOW_MS = 20.0

# One row per job; n = 4 × instance + step, n = 0 the oldest. u1..u3 are fixed pseudo-random draws
# from md5(n), so every run seeds the same table.
SEED_JOBS = """
WITH base AS (
  SELECT n, n / 4 AS i, n % 4 AS j, :jobs - 1 - n AS age, md5(n::text) AS h
  FROM generate_series(0, :jobs - 1) AS n
), drawn AS (
  SELECT b.*, ('x' || substr(h, 1, 8))::bit(32)::bigint / 4294967296.0 AS u1,
         ('x' || substr(h, 9, 8))::bit(32)::bigint / 4294967296.0 AS u2,
         ('x' || substr(h, 17, 8))::bit(32)::bigint / 4294967296.0 AS u3,
         {process} AS p,
         :now - interval '{span}' - interval '20 seconds'
           + (interval '{span}' * i / (:jobs / 4)) + j * interval '2 seconds'
           + ('x' || substr(h, 25, 5))::bit(20)::int * interval '1 microsecond' AS created
  FROM base b
), shaped AS (
  SELECT d.*, (:types::text[])[p + 1][j + 1] AS type,
         CASE WHEN n % 20000 = 12345 THEN 'FAILED'
              WHEN age < 3000 AND u1 < 0.35 THEN 'ACTIVATABLE'
              WHEN age < 3000 AND u1 < 0.5 THEN 'ACTIVATED'
              WHEN age < 50000 AND u1 < 0.004 THEN 'BACKOFF'
              WHEN age < 50000 AND u1 < 0.005 THEN 'TIMED_OUT'
              WHEN u1 < 0.015 THEN 'CANCELLED'
              WHEN u1 < 0.017 THEN 'ERROR_THROWN'
              ELSE 'COMPLETED' END AS fate,
         created + (50 + u2 * 2000) * interval '1 millisecond' AS activated,
         (:pks::int[])[p + 1] AS process_pk
  FROM drawn d
)
INSERT INTO engine_jobs (key, tenant, type, state, instance_key, process_id, process_version, process_pk,
  element_id, element_instance_key, token_id, custom_headers, retries, original_retries, attempts, worker,
  max_jobs_for_worker, timeout_ms, created_at, available_at, activated_at, deadline, ended_at,
  retry_backoff_ms, error_message, error_code, result_variables, completed_by, incident_key)
SELECT 'srv1-job-' || substr(h, 1, 16), :tenant, type,
       CASE fate WHEN 'BACKOFF' THEN 'ACTIVATABLE' WHEN 'TIMED_OUT' THEN 'ACTIVATED' ELSE fate END,
       'srv1-' || substr(md5('i' || i), 1, 16), (:processes::text[])[p + 1], 1, process_pk,
       't' || (j + 1), 'srv1-elem-' || substr(md5('e' || n), 1, 16), 'srv1-token-' || substr(md5('t' || i), 1, 16),
       '{{}}'::jsonb,
       CASE fate WHEN 'FAILED' THEN 0 WHEN 'BACKOFF' THEN 2 ELSE 3 END, 3,
       CASE WHEN fate = 'ACTIVATABLE' THEN 0 ELSE 1 END,
       CASE WHEN fate IN ('ACTIVATABLE', 'CANCELLED') THEN NULL
            ELSE type || '-worker-' || lpad(floor(u3 * {workers})::int::text, 2, '0') END,
       CASE WHEN fate IN ('ACTIVATABLE', 'CANCELLED') THEN NULL ELSE 10 END, 300000, created,
       CASE fate WHEN 'ACTIVATABLE' THEN created
                 WHEN 'BACKOFF' THEN :now + interval '1 hour' + u2 * interval '1 hour'
                 WHEN 'ACTIVATED' THEN :now + interval '1 hour'
                 ELSE activated + interval '5 minutes' END,
       CASE WHEN fate IN ('ACTIVATABLE', 'CANCELLED') THEN NULL ELSE activated END,
       CASE fate WHEN 'ACTIVATED' THEN :now + interval '1 hour'
                 WHEN 'TIMED_OUT' THEN activated + interval '5 minutes'
                 WHEN 'COMPLETED' THEN activated + interval '5 minutes' END,
       CASE WHEN fate IN ('COMPLETED', 'FAILED', 'ERROR_THROWN')
            THEN activated + (20 + u1 * 3000) * interval '1 millisecond'
            WHEN fate = 'CANCELLED' THEN created + interval '30 seconds' END,
       CASE WHEN fate = 'BACKOFF' THEN 1000 END,
       CASE WHEN fate IN ('FAILED', 'ERROR_THROWN', 'BACKOFF') THEN 'upstream said no' END,
       CASE WHEN fate = 'ERROR_THROWN' THEN 'REJECTED' END,
       CASE WHEN fate = 'COMPLETED' THEN '{{"done": true}}'::jsonb END,
       CASE WHEN fate = 'COMPLETED' THEN type || '-worker-' || lpad(floor(u3 * {workers})::int::text, 2, '0') END,
       CASE WHEN fate = 'FAILED' THEN 'srv1-incident-' || substr(h, 1, 16) END
FROM shaped
""".format(span=SPAN, workers=WORKERS_PER_TYPE, process=PROCESS_OF_INSTANCE)

SEED_INSTANCES = """
INSERT INTO engine_instances (key, tenant, process_pk, process_id, version, state, variables, active_tokens,
                              created_at, ended_at)
SELECT 'srv1-' || substr(md5('i' || i), 1, 16), :tenant,
       (:pks::int[])[{process} + 1], (:processes::text[])[{process} + 1], 1,
       'COMPLETED', jsonb_build_object('order', i), 0,
       :now - interval '{span}' - interval '20 seconds' + (interval '{span}' * i / (:jobs / 4)),
       :now - interval '{span}' + (interval '{span}' * i / (:jobs / 4))
FROM generate_series(0, :jobs / 4 - 1) AS i
""".format(span=SPAN, process=PROCESS_OF_INSTANCE)

# Instances with an open or failed job are still running.
SEED_RUNNING = """
UPDATE engine_instances SET state = 'ACTIVE', active_tokens = 1, ended_at = NULL
WHERE key IN (SELECT instance_key FROM engine_jobs WHERE state IN ('ACTIVATABLE', 'ACTIVATED', 'FAILED'))
"""

SEED_INCIDENTS = """
INSERT INTO engine_incidents (key, tenant, type, state, instance_key, element_id, element_instance_key, job_key,
                              job_type, message, created_at)
SELECT incident_key, tenant, 'JOB_FAILURE', 'OPEN', instance_key, element_id, element_instance_key, key, type,
       error_message, ended_at
FROM engine_jobs WHERE state = 'FAILED'
"""


def named(sql: str, params: dict) -> tuple[str, dict]:
    """`:name` placeholders → psycopg's `%(name)s` (the SQL above reads better with the short form)."""
    sql = sql.replace("%", "%%")
    for name in sorted(params, key=len, reverse=True):
        sql = sql.replace(f":{name}", f"%({name})s")
    return sql, params


def prepare(db_url, redis_url, jobs, revision="heads"):
    """Migrate to `revision` (engine_jobs has had its columns since 0002), deploy, seed."""
    from flask_migrate import upgrade

    from app import create_app
    from app.auth import service
    from app.engine import deploy
    from tests.engine.helpers import flow, model, task

    app = create_app(env={"DATABASE_URL": db_url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"})
    pks = {}
    with app.app_context():
        upgrade(revision=revision)
        _, key = service.create_key(name="bench", permissions="job,process", tenant=TENANT)
        for process_id, types in PROCESSES.items():
            steps = "".join(task(f"t{k + 1}", t) for k, t in enumerate(types))
            arrows = "".join(flow(f"f{k}", a, b) for k, (a, b) in enumerate(
                zip(["s", "t1", "t2", "t3", "t4"], ["t1", "t2", "t3", "t4", "e"])))
            process, _ = deploy.deploy(tenant=TENANT, xml=model(
                process_id, f'<bpmn:startEvent id="s" />{steps}<bpmn:endEvent id="e" />{arrows}'))
            pks[process_id] = process.id
    params = {"jobs": jobs, "tenant": TENANT, "processes": list(PROCESSES), "types": list(PROCESSES.values()),
              "pks": [pks[p] for p in PROCESSES]}
    started = time.perf_counter()
    with psycopg.connect(plain(db_url), autocommit=True) as conn:
        params["now"] = conn.execute("SELECT now()").fetchone()[0]
        for label, sql in (("instances", SEED_INSTANCES), ("jobs", SEED_JOBS),
                           ("running instances", SEED_RUNNING), ("incidents", SEED_INCIDENTS)):
            at = time.perf_counter()
            rows = conn.execute(*named(sql, params)).rowcount
            print(f"  seeded {rows:>9,} {label} in {time.perf_counter() - at:.1f} s")
        at = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) engine_jobs, engine_instances, engine_incidents")
        print(f"  VACUUM ANALYZE in {time.perf_counter() - at:.1f} s (autovacuum would have done it by now)")
    print(f"seeded in {time.perf_counter() - started:.1f} s")
    # Workers seen: stats read the last polls from Redis.
    r = redis.Redis.from_url(redis_url)
    now_ms = int(time.time() * 1000)
    for job_type in {t for types in PROCESSES.values() for t in types}:
        r.hset(f"conveyor:engine:workers:{TENANT}:{job_type}",
               mapping={f"{job_type}-worker-{k:02d}": now_ms for k in range(WORKERS_PER_TYPE)})
        r.expire(f"conveyor:engine:workers:{TENANT}:{job_type}", 900)
    return app, key


def plain(db_url):
    return db_url.replace("+psycopg", "")


def decode_cursor(cursor):
    at, key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|", 1)
    return datetime.fromisoformat(at), key


def reference(conn, params, cursor):
    """The page as plain SQL defines it: newest first, ties by key, strictly after the cursor."""
    from app.engine.models import STATE_OF_STATUS

    where, args = ["tenant = %s"], [TENANT]
    for name, column in (("type", "type"), ("worker", "worker"), ("process_instance_id", "instance_key")):
        if name in params:
            where.append(f"{column} = %s")
            args.append(params[name])
    if "status" in params:
        where.append("state = %s")
        args.append(STATE_OF_STATUS[params["status"]])
    if cursor:
        at, key = decode_cursor(cursor)
        where.append("(created_at, key) < (%s, %s)")
        args += [at, key]
    rows = conn.execute(f"SELECT key FROM engine_jobs WHERE {' AND '.join(where)} "
                        f"ORDER BY created_at DESC, key DESC LIMIT %s", [*args, int(params.get("limit", 50))])
    return [r[0] for r in rows]


def timed(session, url, samples, **kwargs):
    for _ in range(3):
        session.get(url, timeout=60, **kwargs).raise_for_status()
    spent = []
    for _ in range(samples):
        started = time.perf_counter()
        session.get(url, timeout=60, **kwargs).raise_for_status()
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent), statistics.quantiles(spent, n=20)[18]


def walk(session, base, headers, params, pages):
    """Cursors to reach pages 1..pages following next_cursor (None for page 1)."""
    cursors, cursor = [None], None
    while len(cursors) < pages:
        body = session.get(base + "/api/v1/jobs", headers=headers, timeout=60,
                           params={**params, **({"cursor": cursor} if cursor else {})}).json()
        cursor = body["data"]["next_cursor"]
        if not cursor:
            break
        cursors.append(cursor)
    return cursors


def plan_lines(node, depth=0):
    label = node["Node Type"] + (f" {node['Index Name']}" if "Index Name" in node else "") \
        + (f" on {node['Relation Name']}" if "Relation Name" in node and "Index Name" not in node else "")
    rows = node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
    extra = [f"rows {rows:,}"]
    for name in ("Rows Removed by Filter", "Rows Removed by Index Recheck", "Heap Fetches"):
        if node.get(name):
            extra.append(f"{name.lower().replace('rows ', '')} {node[name] * node.get('Actual Loops', 1):,}")
    extra.append(f"buffers {node.get('Shared Hit Blocks', 0) + node.get('Shared Read Blocks', 0):,}")
    extra.append(f"{node.get('Actual Total Time', 0):.1f} ms")
    yield f"{'  ' * depth}{label}: {', '.join(extra)}"
    for child in node.get("Plans", []):
        yield from plan_lines(child, depth + 1)


def explain(app, call):
    """EXPLAIN (ANALYZE, BUFFERS) every statement `call` sends, as SQLAlchemy compiled it."""
    from sqlalchemy import event

    from app.extensions import db

    seen = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            call()
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        out = []
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            [[plan]] = db.session.connection().exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters).fetchall()[0]
            columns, _, rest = " ".join(statement.split()).partition(" FROM ")
            out.append(f"  {columns[:70] + '…' if len(columns) > 70 else columns} FROM {rest}")
            out += [f"    {line}" for line in plan_lines(plan["Plan"])]
            out.append(f"    execution {plan['Execution Time']:.1f} ms, planning {plan['Planning Time']:.1f} ms")
        db.session.rollback()
    return out


def list_cases(session, base, headers, db_url, jobs):
    """(label, query, cursor) for each page measured; deep pages are reached by following next_cursor."""
    with psycopg.connect(plain(db_url)) as conn:
        worker, instance = conn.execute(
            "SELECT worker, instance_key FROM engine_jobs WHERE tenant = %s AND type = 'charge-card' "
            "AND state = 'COMPLETED' ORDER BY created_at LIMIT 1 OFFSET %s", (TENANT, jobs // 20)).fetchone()
        rare_worker = conn.execute("SELECT worker FROM engine_jobs WHERE tenant = %s AND type = 'issue-refund' "
                                   "AND worker IS NOT NULL ORDER BY created_at LIMIT 1", (TENANT,)).fetchone()[0]
    filters = [("no filter", {}, [1, 50, 500]),
               ("type=charge-card", {"type": "charge-card"}, [1, 50]),
               ("type=issue-refund (rare)", {"type": "issue-refund"}, [1, 5]),
               ("status=COMPLETED", {"status": "COMPLETED"}, [1, 50]),
               ("status=FAILED", {"status": "FAILED"}, [1]),
               ("status=FAILED limit=10", {"status": "FAILED", "limit": "10"}, [5]),
               (f"worker={worker}", {"worker": worker}, [1, 50]),
               (f"worker={rare_worker} (rare)", {"worker": rare_worker}, [1]),
               ("process_instance_id", {"process_instance_id": instance}, [1])]
    cases = []
    started = time.perf_counter()
    for label, params, pages in filters:
        cursors = walk(session, base, headers, params, max(pages))
        for page in pages:
            if page > len(cursors):
                print(f"  {label}: only {len(cursors)} pages, no page {page}")
                continue
            cases.append((f"{label}, page {page}", params, cursors[page - 1]))
    print(f"walked the cursors in {time.perf_counter() - started:.1f} s")
    return cases


def check_pages(session, base, headers, db_url, cases):
    with psycopg.connect(plain(db_url)) as conn:
        for label, params, cursor in cases:
            got = session.get(base + "/api/v1/jobs", headers=headers, timeout=60,
                              params={**params, **({"cursor": cursor} if cursor else {})}).json()["data"]
            want = reference(conn, params, cursor)
            assert [j["key"] for j in got["jobs"]] == want, f"{label}: the page differs from the SQL reference"
            assert want, f"{label}: empty page"


def check_stats(got, db_url):
    """The figures that do not move while the bench runs, against plain SQL."""
    from app.engine.models import STATUS

    want = {}
    with psycopg.connect(plain(db_url)) as conn:
        for job_type, state, n in conn.execute(
                "SELECT type, state, count(*) FROM engine_jobs WHERE tenant = %s GROUP BY 1, 2", (TENANT,)):
            want.setdefault(job_type, {})[STATUS[state]] = n
        open_jobs = {t: (b, f, o) for t, b, f, o in conn.execute(
            "SELECT type, count(*) FILTER (WHERE available_at <= now()), "
            "count(*) FILTER (WHERE state = 'ACTIVATED' AND available_at > now()), "
            "count(*) FILTER (WHERE state = 'ACTIVATABLE' AND available_at > now()) FROM engine_jobs "
            "WHERE tenant = %s AND state IN ('ACTIVATABLE', 'ACTIVATED') GROUP BY 1", (TENANT,))}
        incidents = dict(conn.execute("SELECT job_type, count(*) FROM engine_incidents WHERE tenant = %s "
                                      "AND state = 'OPEN' GROUP BY 1", (TENANT,)).fetchall())
    for entry in got["types"]:
        counts = {status: n for status, n in entry["counts"].items() if n}
        assert counts == want.pop(entry["type"]), f"stats counts of {entry['type']}"
        figures = (entry["backlog"], entry["in_flight"], entry["in_backoff"])
        assert figures == open_jobs.get(entry["type"], (0, 0, 0)), f"stats open jobs of {entry['type']}"
        assert entry["open_incidents"] == incidents.get(entry["type"], 0), f"stats incidents of {entry['type']}"
    assert not want, f"stats miss types {sorted(want)}"


def print_plans(app, cases, slow, which):
    from app.engine import present, stats

    for label, params, cursor in cases:
        if which == "all" or label in slow:
            args = {"type": params.get("type"), "status": params.get("status"), "worker": params.get("worker"),
                    "process_instance_id": params.get("process_instance_id"),
                    "limit": int(params.get("limit", 50)), "cursor": cursor}
            print(f"EXPLAIN list, {label}:")
            print("\n".join(explain(app, lambda: present.list_jobs(tenant=TENANT, **args))))
    if which == "all" or "stats" in slow:
        # This process has not called the stats yet: the first call, then a later one.
        print("EXPLAIN stats, first call of a process:")
        print("\n".join(explain(app, lambda: stats.job_stats(tenant=TENANT))))
        print("EXPLAIN stats, a later call:")
        print("\n".join(explain(app, lambda: stats.job_stats(tenant=TENANT))))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--plans", choices=["all", "slow"], default="all",
                        help=f"EXPLAIN every case, or only those with p50 above {SLOW_MS:.0f} ms")
    opts = parser.parse_args()
    redis_url = REDIS_URL
    dbname, db_url = new_database()
    web = None
    try:
        app, key = prepare(db_url, redis_url, opts.jobs)
        web, base = start_web(db_url, redis_url)
        session, headers = requests.Session(), {"X-API-Key": key}
        cases = list_cases(session, base, headers, db_url, opts.jobs)
        check_pages(session, base, headers, db_url, cases)
        started = time.perf_counter()
        first = session.get(base + "/api/v1/jobs/stats", headers=headers, timeout=60)
        stats_first = (time.perf_counter() - started) * 1000
        check_stats(first.json()["data"], db_url)

        healthz, _ = timed(session, base + "/healthz", opts.samples * 3)
        results = []
        for label, params, cursor in cases:
            p50, p95 = timed(session, base + "/api/v1/jobs", opts.samples, headers=headers,
                             params={**params, **({"cursor": cursor} if cursor else {})})
            results.append((label, p50, p95))
        results.append(("stats", *timed(session, base + "/api/v1/jobs/stats", opts.samples, headers=headers)))
        healthz_after, _ = timed(session, base + "/healthz", opts.samples * 3)
        healthz = statistics.median([healthz, healthz_after])

        print()
        print(f"{opts.jobs:,} jobs in one tenant; {opts.samples} samples a case; /healthz p50 {healthz:.2f} ms "
              f"(median of before and after)")
        print(f"{'case':<52} {'p50 ms':>8} {'p95 ms':>8} {'p50/healthz':>12}")
        for label, p50, p95 in results:
            print(f"{label:<52} {p50:8.1f} {p95:8.1f} {p50 / healthz:12.1f}")
        print(f"{'stats, first call of the web process (one sample)':<52} {stats_first:8.1f} {'':>8} "
              f"{stats_first / healthz:12.1f}")
        print()
        print_plans(app, cases, {label for label, p50, _ in results if p50 > SLOW_MS}, opts.plans)
    finally:
        if web is not None:
            os.killpg(web.pid, signal.SIGINT)  # quick shutdown: the session's keep-alive would hold TERM
            web.wait(20)
        r = redis.Redis.from_url(redis_url)
        for name in r.scan_iter(f"conveyor:engine:workers:{TENANT}:*"):
            r.delete(name)
        drop_database(dbname)


if __name__ == "__main__":
    main()
