"""Completing a job: the hottest write path, so it is a handful of Core statements, not the ORM.

Lock order is job → instance, as everywhere in the engine (cancel, fail, throw-error, resolve):
the job is claimed with a conditional `UPDATE … WHERE state = 'ACTIVATED' RETURNING …` (a
terminal state is written once: a repeated or racing call finds no row to claim), then its
instance row is locked. On PostgreSQL both happen in one statement (the claim as a
data-modifying CTE joined to the instance `FOR UPDATE OF engine_instances`, which also closes the
task's element instance); on SQLite the `BEGIN IMMEDIATE` transaction already serialises writers. Parallel branches of one instance
thus move its tokens one after the other, and no lock cycle forms with cancel.

The tokens move in memory from the cached parsed definition. On PostgreSQL the new rows
(element instances, jobs, history) and the instance's new state are then written by one statement
(INSERT CTEs on the instance UPDATE: batch.py), then one COMMIT: four round trips (BEGIN, claim,
write, COMMIT; the API key is usually remembered, app/auth/key_cache.py). On SQLite:
`Movement.flush()` (an executemany per table) and an UPDATE.
"""
from sqlalchemy import bindparam, select, update

from app import clock
from app.engine import batch, deploy, driver, tx
from app.engine.errors import JobNotFound
from app.engine.jobs import refusal, check_variables, merge_variables
from app.engine.models import ACTIVATED, COMPLETED, ElementInstance, Instance, Job, by_key
from app.engine.runtime import InstanceState, Movement
from app.extensions import db

_J, _I, _EI = Job.__table__, Instance.__table__, ElementInstance.__table__
_INSTANCE_COLUMNS = (_I.c.key.label("i_key"), _I.c.tenant.label("i_tenant"), _I.c.process_pk.label("i_process_pk"),
                     _I.c.process_id.label("i_process_id"), _I.c.version.label("i_version"),
                     _I.c.state.label("i_state"), _I.c.variables.label("i_variables"),
                     _I.c.active_tokens.label("i_active_tokens"))
_SAVE_INSTANCE = update(_I).where(_I.c.key == bindparam("ik")).values(
    variables=bindparam("v", type_=_I.c.variables.type), active_tokens=bindparam("n"), state=bindparam("s"),
    ended_at=bindparam("e", type_=_I.c.ended_at.type))


def _claim(with_worker: bool):
    # Only the key may lead the planner to the row (see `by_key`): state and worker are tested with
    # `IS NOT DISTINCT FROM` too. With `=`, statistics taken while no job was active made the planner
    # walk the (tenant, state) index over every active job of the tenant on each completion.
    conditions = [*by_key(_J.c, bindparam("k"), bindparam("t")), _J.c.state.is_not_distinct_from(ACTIVATED),
                  _J.c.deadline >= bindparam("now", type_=_J.c.deadline.type)]
    if with_worker:
        conditions.append(_J.c.worker.is_not_distinct_from(bindparam("w")))
    return (update(_J).where(*conditions)
            .values(state=COMPLETED, ended_at=bindparam("now", type_=_J.c.ended_at.type), completed_by=_J.c.worker,
                    result_variables=bindparam("res", type_=_J.c.result_variables.type))
            .returning(_J.c.key, _J.c.type, _J.c.instance_key, _J.c.process_pk, _J.c.element_id,
                       _J.c.element_instance_key, _J.c.token_id, _J.c.worker, _J.c.attempts, _J.c.activated_at,
                       _J.c.retries, _J.c.original_retries))


def _claim_and_lock(with_worker: bool):
    claimed = _claim(with_worker).cte("claimed")
    closed = (update(_EI).where(_EI.c.key == select(claimed.c.element_instance_key).scalar_subquery())
              .values(state="COMPLETED", left_at=bindparam("now", type_=_EI.c.left_at.type))
              .returning(_EI.c.key).cte("closed"))
    return (select(claimed, *_INSTANCE_COLUMNS).join_from(claimed, _I, _I.c.key == claimed.c.instance_key)
            .with_for_update(of=_I).add_cte(closed))


_CLAIM = {w: _claim(w) for w in (False, True)}
_CLAIM_AND_LOCK = {w: driver.Statement(_claim_and_lock(w)) for w in (False, True)}
_INSTANCE = select(*_INSTANCE_COLUMNS).where(_I.c.key == bindparam("ik"))


def _claimed_row(conn, params: dict, with_worker: bool):
    if tx.is_postgres():
        return _CLAIM_AND_LOCK[with_worker].execute(conn, params).fetchone()
    job = conn.execute(_CLAIM[with_worker], params).first()
    if job is None:
        return None
    inst = conn.execute(_INSTANCE, {"ik": job.instance_key}).first()
    return _Joined(job, inst)


class _Joined:
    """SQLite: the claimed job row and its instance row read as one."""

    def __init__(self, job, inst):
        self._job, self._inst = job, inst

    def __getattr__(self, name):
        return getattr(self._inst if name.startswith("i_") else self._job, name)


def complete(*, tenant: str, key: str, worker: str | None = None, variables=None, received_at=None) -> dict:
    result = check_variables(variables)
    with tx.write():
        conn = db.session.connection()
        now = clock.utcnow()
        params = {"k": key, "t": tenant, "now": now, "res": result}
        if worker:
            params["w"] = worker
        job = _claimed_row(conn, params, bool(worker))
        if job is None:
            current = db.session.scalar(select(Job).where(*by_key(Job, key, tenant)))
            if current is None:
                raise JobNotFound(key, completing=True)
            raise refusal(current, worker, now)
        inst = InstanceState(key=job.i_key, tenant=job.i_tenant, process_pk=job.i_process_pk,
                             process_id=job.i_process_id, version=job.i_version, state=job.i_state,
                             variables=job.i_variables, active_tokens=job.i_active_tokens)
        changes = merge_variables(inst, result)
        postgres = tx.is_postgres()
        move = Movement(inst, deploy.definition(job.process_pk), now)
        move.complete_task(job.element_id, job.token_id, None if postgres else job.element_instance_key)
        total = clock.ms_between(job.activated_at, now)
        overhead = min(total, max(0, clock.ms_between(received_at or now, now)))
        move.history(key, "JOB_COMPLETED", worker=job.worker, attempt=job.attempts, details={
            "details": "Job completed successfully", "system_overhead_ms": overhead,
            "result_summary": {"variables_added": len(changes["added"]), "processing_time_ms": total - overhead}})
        if postgres:
            batch.write(conn, move.take_rows(), main=_SAVE_INSTANCE, main_name="complete",
                        params={"ik": inst.key, "v": inst.variables, "n": inst.active_tokens, "s": inst.state,
                                "e": inst.ended_at})
        else:
            move.flush()
            conn.execute(_SAVE_INSTANCE, {"ik": inst.key, "v": inst.variables, "n": inst.active_tokens,
                                          "s": inst.state, "e": inst.ended_at})
        move.announce_jobs()
        tx.job_event("job.completed", job_key=key, job_type=job.type, tenant=tenant, instance_key=inst.key,
                     worker=job.worker)
        answer = {
            "job_key": key, "status": "COMPLETED", "completed_at": clock.iso(now), "completed_by": job.worker,
            "execution_summary": {"started_at": clock.iso(job.activated_at), "total_duration_ms": total,
                                  "processing_time_ms": total - overhead, "system_overhead_ms": overhead,
                                  "retries_used": job.original_retries - job.retries},
            "process_continuation": {"process_instance_id": inst.key, "element_id": job.element_id,
                                     "token_id": job.token_id, "next_activities": move.next_activities},
            "variables_updated": changes, "result_variables": result,
        }
    return answer
