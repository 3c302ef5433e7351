"""Completing a job: the hottest write path, so it is a handful of Core statements, not the ORM.

Lock order is job → instance, as everywhere in the engine (cancel, fail, throw-error, resolve):
the job is claimed with a conditional `UPDATE … WHERE state = 'ACTIVATED' …` (a terminal state is
written once: a repeated or racing call finds no row to claim), then its instance row is written.

PostgreSQL, first (`_complete_unlocked`): two statements, each its own transaction. Read the job
and its instance (with the instance row's version, `xmin`), move the tokens in memory from the
cached definition, then one statement claims the job, writes the instance only if its row is still
that version, closes the task's element instance and inserts the movement's rows (batch.py); if
the job or the instance changed in between it aborts itself whole. Every PostgreSQL message costs
about 0.12 ms of the web process's CPU here (loopback TCP), so this is half of the locking path's
four (BEGIN, claim, write, COMMIT).

The locking path, when that one gives way (a movement that reaches a join or opens an incident, a
job that is not plainly completable — it answers the precise refusal — or a write that found
something changed): the claim and a `FOR UPDATE` lock of the instance in one statement, the
movement, one write, COMMIT. Parallel branches of one instance thus move its tokens one after the
other. On SQLite the `BEGIN IMMEDIATE` transaction serialises writers; rows are written by
`Movement.flush()` (an executemany per table) and an UPDATE.
"""
import psycopg
from sqlalchemy import bindparam, exists, literal_column, select, text, update

from app import clock
from app.engine import batch, deploy, driver, tx
from app.engine.errors import JobNotFound
from app.engine.jobs import refusal, check_variables, merge_variables
from app.engine.models import ACTIVATED, COMPLETED, ElementInstance, Instance, Job
from app.engine.runtime import InstanceState, Movement, NeedsLock
from app.extensions import db
from app.notify.events import forget_pending

_J, _I, _EI = Job.__table__, Instance.__table__, ElementInstance.__table__
_INSTANCE_COLUMNS = (_I.c.key.label("i_key"), _I.c.tenant.label("i_tenant"), _I.c.process_pk.label("i_process_pk"),
                     _I.c.process_id.label("i_process_id"), _I.c.version.label("i_version"),
                     _I.c.state.label("i_state"), _I.c.variables.label("i_variables"),
                     _I.c.active_tokens.label("i_active_tokens"))
_SAVE_INSTANCE = update(_I).where(_I.c.key == bindparam("ik")).values(
    variables=bindparam("v", type_=_I.c.variables.type), active_tokens=bindparam("n"), state=bindparam("s"),
    ended_at=bindparam("e", type_=_I.c.ended_at.type))


def _claim(with_worker: bool):
    conditions = [_J.c.key == bindparam("k"), _J.c.tenant == bindparam("t"), _J.c.state == ACTIVATED,
                  _J.c.deadline >= bindparam("now", type_=_J.c.deadline.type)]
    if with_worker:
        conditions.append(_J.c.worker == bindparam("w"))
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


def _unlocked_claim(with_worker: bool):
    """The claim, only if the job is still the activation that was read (its attempt number)."""
    claim = _claim(with_worker)
    return claim.where(_J.c.attempts == bindparam("a0"))


def _unlocked_write(with_worker: bool):
    """Claim the job, then write its instance only if the row is the version that was read (PostgreSQL's
    `xmin`: any update makes a new row version), then close the task's element instance; in that
    order, so locks are taken job → instance as everywhere. The final SELECT divides by the number
    of instance rows written: when the job or the instance changed since the read it is 0, and
    PostgreSQL aborts the whole statement — nothing of it is written."""
    claimed = _unlocked_claim(with_worker).cte("claimed")
    moved = (update(_I).where(_I.c.key == bindparam("ik"), text("engine_instances.xmin = CAST(:x0 AS xid)"),
                              exists(select(claimed.c.key)))
             .values(variables=bindparam("v", type_=_I.c.variables.type), active_tokens=bindparam("n"),
                     state=bindparam("s"), ended_at=bindparam("e", type_=_I.c.ended_at.type))
             .returning(_I.c.key).cte("moved"))
    closed = (update(_EI).where(_EI.c.key == bindparam("eik"), exists(select(moved.c.key)))
              .values(state="COMPLETED", left_at=bindparam("now", type_=_EI.c.left_at.type))
              .returning(_EI.c.key).cte("closed"))
    return select(text("1 / (SELECT count(*) FROM moved) AS ok")).add_cte(claimed).add_cte(moved).add_cte(closed)


_READ = driver.Statement(
    select(_J.c.key, _J.c.type, _J.c.state, _J.c.worker, _J.c.deadline, _J.c.instance_key, _J.c.process_pk,
           _J.c.element_id, _J.c.element_instance_key, _J.c.token_id, _J.c.attempts, _J.c.activated_at,
           _J.c.retries, _J.c.original_retries, *_INSTANCE_COLUMNS,
           literal_column("engine_instances.xmin::text").label("i_xmin"))
    .join_from(_J, _I, _I.c.key == _J.c.instance_key).where(_J.c.key == bindparam("k"), _J.c.tenant == bindparam("t")))
_UNLOCKED_WRITE = {w: _unlocked_write(w) for w in (False, True)}


def complete(*, tenant: str, key: str, worker: str | None = None, variables=None, received_at=None) -> dict:
    result = check_variables(variables)
    if tx.is_postgres():
        answer = _complete_unlocked(tenant=tenant, key=key, worker=worker, result=result, received_at=received_at)
        if answer is not None:
            return answer
    with tx.write():
        conn = db.session.connection()
        now = clock.utcnow()
        params = {"k": key, "t": tenant, "now": now, "res": result}
        if worker:
            params["w"] = worker
        job = _claimed_row(conn, params, bool(worker))
        if job is None:
            current = db.session.scalar(select(Job).where(Job.key == key, Job.tenant == tenant))
            if current is None:
                raise JobNotFound(key, completing=True)
            raise refusal(current, worker, now)
        postgres = tx.is_postgres()
        done = _Completion(job, result, now, received_at, element_closed=postgres)
        inst = done.instance
        if postgres:
            batch.write(conn, done.move.take_rows(), main=_SAVE_INSTANCE, main_name="complete",
                        params={"ik": inst.key, "v": inst.variables, "n": inst.active_tokens, "s": inst.state,
                                "e": inst.ended_at})
        else:
            done.move.flush()
            conn.execute(_SAVE_INSTANCE, {"ik": inst.key, "v": inst.variables, "n": inst.active_tokens,
                                          "s": inst.state, "e": inst.ended_at})
        answer = done.announce(key, tenant)
    return answer


def _complete_unlocked(*, tenant: str, key: str, worker: str | None, result: dict, received_at) -> dict | None:
    """PostgreSQL's common case in two round trips, with no transaction held open between them: read the
    job and its instance, move the tokens in memory, then one statement writes it all if nothing
    changed meanwhile (`_unlocked_write`). None when the locking path must decide: the job is not
    plainly completable (it gives the precise refusal), the movement needs a join or an incident, or
    the write found the job or instance changed."""
    with tx.write():
        conn = db.session.connection()
        now = clock.utcnow()
        with driver.on_its_own(conn):
            job = _READ.execute(conn, {"k": key, "t": tenant}).fetchone()
        if (job is None or job.state != ACTIVATED or job.deadline < now or (worker and job.worker != worker)
                or job.i_state != "ACTIVE"):
            return None
        try:
            done = _Completion(job, result, now, received_at, element_closed=True, unlocked=True)
            inst = done.instance
            params = {"k": key, "t": tenant, "now": now, "res": result, "a0": job.attempts, "ik": inst.key,
                      "x0": job.i_xmin, "eik": job.element_instance_key, "v": inst.variables,
                      "n": inst.active_tokens, "s": inst.state, "e": inst.ended_at}
            if worker:
                params["w"] = worker
            with driver.on_its_own(conn):
                batch.write(conn, done.move.take_rows(), main=_UNLOCKED_WRITE[bool(worker)],
                            main_name=f"complete-unlocked-{bool(worker)}", params=params)
        except (NeedsLock, psycopg.errors.DivisionByZero):
            db.session.rollback()
            forget_pending(db.session)  # the events of a movement that was not written
            return None
        return done.announce(key, tenant)


class _Completion:
    """A claimed job's tokens moved in memory, its history row buffered; `announce` after the write."""

    def __init__(self, job, result: dict, now, received_at, *, element_closed: bool, unlocked: bool = False):
        self.job, self.result, self.now = job, result, now
        self.instance = InstanceState(key=job.i_key, tenant=job.i_tenant, process_pk=job.i_process_pk,
                                      process_id=job.i_process_id, version=job.i_version, state=job.i_state,
                                      variables=job.i_variables, active_tokens=job.i_active_tokens)
        self.changes = merge_variables(self.instance, result)
        self.move = Movement(self.instance, deploy.definition(job.process_pk), now, unlocked=unlocked)
        self.move.complete_task(job.element_id, job.token_id, None if element_closed else job.element_instance_key)
        self.total = clock.ms_between(job.activated_at, now)
        self.overhead = min(self.total, max(0, clock.ms_between(received_at or now, now)))
        self.move.history(job.key, "JOB_COMPLETED", worker=job.worker, attempt=job.attempts, details={
            "details": "Job completed successfully", "system_overhead_ms": self.overhead,
            "result_summary": {"variables_added": len(self.changes["added"]),
                               "processing_time_ms": self.total - self.overhead}})

    def announce(self, key: str, tenant: str) -> dict:
        job, inst, now = self.job, self.instance, self.now
        self.move.announce_jobs()
        tx.job_event("job.completed", job_key=key, job_type=job.type, tenant=tenant, instance_key=inst.key,
                     worker=job.worker)
        return {
            "job_key": key, "status": "COMPLETED", "completed_at": clock.iso(now), "completed_by": job.worker,
            "execution_summary": {"started_at": clock.iso(job.activated_at), "total_duration_ms": self.total,
                                  "processing_time_ms": self.total - self.overhead,
                                  "system_overhead_ms": self.overhead,
                                  "retries_used": job.original_retries - job.retries},
            "process_continuation": {"process_instance_id": inst.key, "element_id": job.element_id,
                                     "token_id": job.token_id, "next_activities": self.move.next_activities},
            "variables_updated": self.changes, "result_variables": self.result,
        }
