"""Rows looked up by key are found by the key's index, whatever PostgreSQL's statistics say.

Job states change faster than statistics are refreshed: a table analysed while no job was active
says 'ACTIVATED' is rare, and a planner trusting that walked the (tenant, state) index over every
active job of the tenant, and their dead versions, on each completion (found by the worker API
bench: PostgreSQL CPU per completion doubled as jobs in flight grew). Likewise a tenant the
statistics have not seen yet made every lookup by key walk that tenant's rows.
"""
import psycopg
import pytest
from sqlalchemy import select, text

from app import clock
from app.engine import activation, completion, deploy, instances
from app.engine.models import Instance, Job, by_key
from app.extensions import db
from tests.engine.helpers import one_task


def _plan(app, worker: str | None, keys: list[str]) -> str:
    statement = completion._claim_many(len(keys))
    conn = db.session.connection()
    statement._compile(conn.dialect)
    asked = {"now": clock.utcnow()}
    for i, key in enumerate(keys):
        asked.update({f"k{i}": key, f"t{i}": "t", f"w{i}": worker, f"r{i}": {}})
    params = statement.compiled.construct_params(asked)
    values = {n: statement.processors[n](v) if n in statement.processors else v for n, v in params.items()}
    raw = psycopg.connect(app.config["SQLALCHEMY_DATABASE_URI"].replace("+psycopg", ""))
    try:
        with raw.cursor() as cur:
            # With the values, as the statement's first executions are planned: from the stale statistics.
            return "\n".join(r[0] for r in cur.execute("EXPLAIN " + statement.sql, values))
    finally:
        raw.close()


@pytest.mark.parametrize("worker", [None, "w"])
@pytest.mark.parametrize("group", [1, 3])
def test_the_claim_reads_the_job_by_its_key_when_statistics_say_no_job_is_active(app, worker, group):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL planner question")
    deploy.deploy(tenant="t", xml=one_task("p", "work"))
    for _ in range(300):
        instances.start(tenant="t", process_id="p")
    db.session.execute(text("ANALYZE engine_jobs"))  # every job ACTIVATABLE now: 'ACTIVATED' looks rare
    db.session.commit()
    jobs, _ = activation.activate_now(tenant="t", job_type="work", worker="w", max_jobs=300, timeout_ms=60000)
    assert len(jobs) == 300

    plan = _plan(app, worker, [job["key"] for job in jobs[:group]])
    claim = plan.split("CTE closed")[0]
    assert "engine_jobs_pkey" in claim, plan
    assert "ix_engine_jobs_tenant" not in claim, plan


def test_lookups_by_key_use_the_key_index_for_a_tenant_the_statistics_have_not_seen(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL planner question")
    deploy.deploy(tenant="old", xml=one_task("p", "work"))
    for _ in range(300):
        instances.start(tenant="old", process_id="p")
    db.session.execute(text("ANALYZE engine_jobs; ANALYZE engine_instances"))
    db.session.commit()
    deploy.deploy(tenant="new", xml=one_task("p", "work"))
    for _ in range(300):
        instances.start(tenant="new", process_id="p")
    job_key = db.session.scalar(select(Job.key).where(Job.tenant == "new").limit(1))
    instance_key = db.session.scalar(select(Instance.key).where(Instance.tenant == "new").limit(1))

    for model, key, index in ((Job, job_key, "engine_jobs_pkey"), (Instance, instance_key, "engine_instances_pkey")):
        query = select(model).where(*by_key(model, key, "new")).with_for_update()
        compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in db.session.execute(text(f"EXPLAIN {compiled}")))
        assert index in plan and "_tenant_" not in plan, plan
