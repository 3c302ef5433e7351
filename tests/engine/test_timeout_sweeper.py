"""Timed-out jobs are released by the RQ worker's sweeper, with nobody polling for them."""

import pytest

from app.extensions import db
from tests.engine.helpers import Api, one_task
from tests.support import wait_until


@pytest.mark.slow
def test_the_worker_process_releases_a_timed_out_job_so_get_and_stats_show_it(client, key_headers, rq_worker):
    api = Api(client, key_headers)
    api.deploy(one_task())
    api.start("one")
    job = api.activate("work", worker="slow", timeout=1000)[0]

    def released():
        status, body = api.job(job["key"])
        return body["data"] if body["data"]["status"] == "ACTIVATABLE" else None

    detail = wait_until(released, seconds=30, interval=0.2, before=db.session.remove,
                        what="the release")  # the worker process may still be starting
    actions = [h["action"] for h in detail["execution_history"]]
    assert actions == ["JOB_CREATED", "JOB_ACTIVATED", "JOB_TIMED_OUT"]
    assert detail["retry_configuration"]["retries"] == 3  # no retry spent
    stats = api.call("get", "/api/v1/jobs/stats")[1]["data"]
    work = next(t for t in stats["types"] if t["type"] == "work")
    assert work["counts"]["ACTIVATABLE"] == 1 and work["counts"]["ACTIVE"] == 0 and work["backlog"] == 1
    assert work["in_flight"] == 0

    status, body = api.complete(job["key"], worker="slow")
    assert status == 409 and body["error"]["details"]["current_status"] == "TIMED_OUT"

    again = api.activate("work", worker="fast")
    assert [j["key"] for j in again] == [job["key"]]
    assert api.complete(job["key"], worker="fast")[0] == 200
    actions = [h["action"] for h in api.job(job["key"])[1]["data"]["execution_history"]]
    assert actions == ["JOB_CREATED", "JOB_ACTIVATED", "JOB_TIMED_OUT", "JOB_ACTIVATED", "JOB_COMPLETED"]


def test_the_sweep_reads_only_jobs_in_flight_however_large_the_backlog(app, monkeypatch):
    """The sweep runs every second in every RQ worker: it must not read the activatable backlog."""
    from datetime import timedelta

    from psycopg import sql as psycopg_sql
    from sqlalchemy import text

    from app import clock
    from app.engine import activation, deploy, instances, sweeper

    deploy.deploy(tenant="t", xml=one_task("p", "work"))
    for _ in range(400):
        instances.start(tenant="t", process_id="p")
    # Ten minutes, and this sweep looks from eleven minutes on: the session's RQ worker, sweeping this
    # database every second, must not release them first.
    jobs, _ = activation.activate_now(tenant="t", job_type="work", worker="w", max_jobs=3, timeout_ms=600_000)
    db.session.execute(text("ANALYZE engine_jobs" if db.engine.dialect.name == "postgresql" else "ANALYZE"))
    db.session.commit()
    real_utcnow = clock.utcnow
    monkeypatch.setattr(clock, "utcnow", lambda: real_utcnow() + timedelta(minutes=11))

    assert sweeper.sweep_timeouts() == 3  # the three past their deadline, none of the 397 waiting
    conn = db.session.connection()
    compiled = sweeper._DUE.compile(conn)
    params = compiled.construct_params({"now": clock.utcnow()})
    if conn.dialect.name == "postgresql":
        # As the sweep runs it once psycopg has prepared it: with a generic plan, blind to parameter values.
        sql, names = compiled.string, list(params)
        for i, name in enumerate(names, 1):
            sql = sql.replace(f"%({name})s", f"${i}")
        raw = conn.connection.driver_connection
        raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        raw.execute(f"PREPARE sweep_due AS {sql}")
        values = psycopg_sql.SQL(", ").join(psycopg_sql.Literal(params[n]) for n in names)
        rows = raw.execute(psycopg_sql.SQL("EXPLAIN EXECUTE sweep_due({})").format(values)).fetchall()
        raw.execute("DEALLOCATE sweep_due")
    else:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}",
                                    tuple(params[name] for name in compiled.positiontup))
    plan = " ".join(str(r[-1]) for r in rows)
    assert "ix_engine_jobs_in_flight_deadline" in plan, plan
    db.session.rollback()
