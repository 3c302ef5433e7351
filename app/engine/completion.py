"""Completing a job: the hottest write path, so it is a handful of Core statements, not the ORM.

Lock order is job → instance, as everywhere in the engine (cancel, fail, throw-error, resolve):
the job is claimed with a conditional `UPDATE … WHERE state = 'ACTIVATED' RETURNING …` (a
terminal state is written once: a repeated or racing call finds no row to claim), then its
instance row is locked. Parallel branches of one instance thus move its tokens one after the
other, and no lock cycle forms with cancel.

On PostgreSQL completions are committed together (group commit, as databases do with their own
log): in a web process, those that arrive while one transaction is being committed wait and go
into the next one (`completion_queue.py`), on a connection the committer holds, outside the ORM
session (`tx.write_on`: a pool checkout and a session transaction cost more than a round trip).
A transaction for N completions costs the same four round trips as one (BEGIN, claim, write,
COMMIT): one statement claims every job, closes the tasks' element instances and locks the
instances in key order (so two such transactions never wait on each other in a cycle); the tokens
move in memory from the cached parsed definitions, two jobs of one instance one after the other;
one statement writes every new row (element instances, jobs, history: INSERT CTEs, batch.py) and
every instance's new state. If anything fails, each completion is retried in a transaction of its
own, so one bad completion never fails another.
On SQLite the `BEGIN IMMEDIATE` transaction serialises writers and each completion runs alone:
`Movement.flush()` (an executemany per table) and an UPDATE.
"""
import logging

from sqlalchemy import bindparam, literal_column, or_, select, union_all, update

from app import clock
from app.engine import batch, deploy, driver, tx
from app.engine.completion_queue import queue
from app.engine.errors import JobNotFound
from app.engine.jobs import refusal, check_variables, merge_variables
from app.engine.models import ACTIVATED, COMPLETED, ElementInstance, Instance, Job, by_key
from app.engine.runtime import InstanceState, Movement
from app.extensions import db

log = logging.getLogger("conveyor.engine.completion")

_J, _I, _EI = Job.__table__, Instance.__table__, ElementInstance.__table__
_INSTANCE_COLUMNS = (_I.c.key.label("i_key"), _I.c.tenant.label("i_tenant"), _I.c.process_pk.label("i_process_pk"),
                     _I.c.process_id.label("i_process_id"), _I.c.version.label("i_version"),
                     _I.c.state.label("i_state"), _I.c.variables.label("i_variables"),
                     _I.c.active_tokens.label("i_active_tokens"))
_JOB_COLUMNS = (_J.c.key, _J.c.type, _J.c.instance_key, _J.c.process_pk, _J.c.element_id, _J.c.element_instance_key,
                _J.c.token_id, _J.c.worker, _J.c.attempts, _J.c.activated_at, _J.c.retries, _J.c.original_retries)


def _now():
    return bindparam("now", type_=_J.c.deadline.type)


class Completion:
    """One worker's request to complete a job: what it asked, and when it arrived."""
    __slots__ = ("tenant", "key", "worker", "result", "received_at")

    def __init__(self, tenant: str, key: str, worker: str | None, result: dict, received_at):
        self.tenant, self.key, self.worker, self.result, self.received_at = tenant, key, worker, result, received_at


def complete(*, tenant: str, key: str, worker: str | None = None, variables=None, received_at=None) -> dict:
    request = Completion(tenant, key, worker or None, check_variables(variables), received_at)
    if tx.is_postgres():
        return queue.submit(request)
    return _complete_on_sqlite(request)


# -- PostgreSQL: completions committed together -------------------------------------------------

def _save_instance(i: int):
    return update(_I).where(_I.c.key == bindparam(f"ik{i}")).values(
        variables=bindparam(f"v{i}", type_=_I.c.variables.type), active_tokens=bindparam(f"n{i}"),
        state=bindparam(f"s{i}"), ended_at=bindparam(f"e{i}", type_=_I.c.ended_at.type))


def _claim_many(count: int) -> driver.Statement:
    """Claim `count` jobs (each by key, tenant and, if given, worker), close their tasks' element
    instances and lock their instances, in key order, in one statement. Rows name their request's
    index; a request whose job could not be claimed has no row."""
    asked = union_all(*(select(literal_column(str(i)).label("idx"), bindparam(f"k{i}").label("k"),
                               bindparam(f"t{i}").label("t"), bindparam(f"w{i}").label("w"),
                               bindparam(f"r{i}", type_=_J.c.result_variables.type).label("res"))
                        for i in range(count))).subquery("asked")
    # Only the key may lead the planner to a row (see `by_key`): tenant, state and worker are tested
    # with `IS NOT DISTINCT FROM`. With `=`, statistics taken while no job was active made the planner
    # walk the (tenant, state) index over every active job of the tenant on each completion.
    claimed = (update(_J)
               .where(*by_key(_J.c, asked.c.k, asked.c.t), _J.c.state.is_not_distinct_from(ACTIVATED),
                      _J.c.deadline >= _now(),
                      or_(asked.c.w.is_(None), _J.c.worker.is_not_distinct_from(asked.c.w)))
               .values(state=COMPLETED, ended_at=_now(), completed_by=_J.c.worker,
                       result_variables=asked.c.res)
               .returning(asked.c.idx, *_JOB_COLUMNS).cte("claimed"))
    closed = (update(_EI).where(_EI.c.key.in_(select(claimed.c.element_instance_key)))
              .values(state="COMPLETED", left_at=_now()).returning(_EI.c.key).cte("closed"))
    return driver.Statement(
        select(claimed, *_INSTANCE_COLUMNS).join_from(claimed, _I, _I.c.key == claimed.c.instance_key)
        .order_by(_I.c.key).with_for_update(of=_I).add_cte(closed))


def _save_instances(count: int):
    """One UPDATE per instance, the first as the statement and the others as CTEs riding on it."""
    main = _save_instance(0)
    for i in range(1, count):
        main = main.add_cte(_save_instance(i).cte(f"saved_{i}"))
    return main


_CLAIMS: dict[int, driver.Statement] = {}
_SAVES: dict[int, object] = {}


def _cached(cache: dict, build, count: int):
    statement = cache.get(count)
    if statement is None:
        statement = cache[count] = build(count)
    return statement


def complete_together(requests: list[Completion], conn=None) -> list:
    """Complete these jobs in one transaction; each outcome is the answer or the error for its request.
    `conn`: a SQLAlchemy Connection the caller holds (a committer's), else one taken for this call."""
    if conn is None:
        with db.engine.connect() as taken:
            return complete_together(requests, taken)
    try:
        return _commit_together(requests, conn)
    except Exception as exc:
        if len(requests) == 1:
            return [exc]
        log.warning("a group of %d completions failed (%r); each is retried alone", len(requests), exc)
    return [complete_together([request], conn)[0] for request in requests]


def _commit_together(requests: list[Completion], conn) -> list:
    outcomes: list = [None] * len(requests)
    with tx.write_on(conn):
        now = clock.utcnow()
        params = {"now": now}
        for i, request in enumerate(requests):
            params.update({f"k{i}": request.key, f"t{i}": request.tenant, f"w{i}": request.worker,
                           f"r{i}": request.result})
        claimed = {row.idx: row for row in _cached(_CLAIMS, _claim_many, len(requests)).execute(conn, params)}
        instances: dict[str, InstanceState] = {}
        rows: dict = {}
        for i, request in enumerate(requests):
            job = claimed.get(i)
            if job is None:
                outcomes[i] = _refusal(conn, request, now)
                continue
            inst = instances.get(job.i_key)
            if inst is None:
                inst = instances[job.i_key] = _instance_state(job)
            elif rows:  # another token of an instance moved in this group: a join counts its rows in the table
                batch.write(conn, list(rows.items()))
                rows.clear()
            move = Movement(inst, deploy.definition(job.process_pk), now, conn=conn)
            outcomes[i] = _move_on(request, job, inst, move, now, open_element=None)  # the claim closed it
            for table, new in move.take_rows():
                rows.setdefault(table, []).extend(new)
            move.announce_jobs()
        if instances:
            saves = {}
            for i, inst in enumerate(instances.values()):
                saves.update({f"ik{i}": inst.key, f"v{i}": inst.variables, f"n{i}": inst.active_tokens,
                              f"s{i}": inst.state, f"e{i}": inst.ended_at})
            batch.write(conn, list(rows.items()), main=_cached(_SAVES, _save_instances, len(instances)),
                        main_name=f"complete-{len(instances)}", params=saves)
    return outcomes


_CURRENT = select(_J.c.key, _J.c.state, _J.c.worker, _J.c.deadline).where(
    *by_key(_J.c, bindparam("k"), bindparam("t")))


def _refusal(conn, request: Completion, now):
    """Why this job could not be claimed (read in the claim's transaction: a job completed by another
    request of the same transaction reads as completed)."""
    current = conn.execute(_CURRENT, {"k": request.key, "t": request.tenant}).first()
    if current is None:
        return JobNotFound(request.key, completing=True)
    return refusal(current, request.worker, now)


# -- both databases -----------------------------------------------------------------------------

def _instance_state(row) -> InstanceState:
    """The instance columns (`i_*`) of a claim's row."""
    return InstanceState(key=row.i_key, tenant=row.i_tenant, process_pk=row.i_process_pk,
                         process_id=row.i_process_id, version=row.i_version, state=row.i_state,
                         variables=row.i_variables, active_tokens=row.i_active_tokens)


def _move_on(request: Completion, job, inst: InstanceState, move: Movement, now, open_element: str | None) -> dict:
    """Merge the result, move the token on from the task, record the history row and the event;
    returns the answer. `open_element`: the task's element instance, if the claim did not close it."""
    changes = merge_variables(inst, request.result)
    # Events in causal order: the job, then what moving on did (the instance may complete).
    tx.job_event("job.completed", job_key=request.key, job_type=job.type, tenant=request.tenant,
                 instance_key=inst.key, worker=job.worker)
    move.complete_task(job.element_id, job.token_id, open_element)
    total = clock.ms_between(job.activated_at, now)
    overhead = min(total, max(0, clock.ms_between(request.received_at or now, now)))
    move.history(request.key, "JOB_COMPLETED", worker=job.worker, attempt=job.attempts, details={
        "details": "Job completed successfully", "system_overhead_ms": overhead,
        "result_summary": {"variables_added": len(changes["added"]), "processing_time_ms": total - overhead}})
    return {
        "job_key": request.key, "status": "COMPLETED", "completed_at": clock.iso(now), "completed_by": job.worker,
        "execution_summary": {"started_at": clock.iso(job.activated_at), "total_duration_ms": total,
                              "processing_time_ms": total - overhead, "system_overhead_ms": overhead,
                              "retries_used": job.original_retries - job.retries},
        "process_continuation": {"process_instance_id": inst.key, "element_id": job.element_id,
                                 "token_id": job.token_id, "next_activities": move.next_activities},
        "variables_updated": changes, "result_variables": request.result,
    }


# -- SQLite: one completion at a time -----------------------------------------------------------

def _claim(with_worker: bool):
    conditions = [*by_key(_J.c, bindparam("k"), bindparam("t")), _J.c.state.is_not_distinct_from(ACTIVATED),
                  _J.c.deadline >= _now()]
    if with_worker:
        conditions.append(_J.c.worker.is_not_distinct_from(bindparam("w")))
    return (update(_J).where(*conditions)
            .values(state=COMPLETED, ended_at=_now(), completed_by=_J.c.worker,
                    result_variables=bindparam("res", type_=_J.c.result_variables.type))
            .returning(*_JOB_COLUMNS))


_CLAIM = {w: _claim(w) for w in (False, True)}
_INSTANCE = select(*_INSTANCE_COLUMNS).where(_I.c.key == bindparam("ik"))
_SAVE_INSTANCE = _save_instance(0)


def _complete_on_sqlite(request: Completion) -> dict:
    with tx.write():
        conn = db.session.connection()
        now = clock.utcnow()
        params = {"k": request.key, "t": request.tenant, "now": now, "res": request.result}
        if request.worker:
            params["w"] = request.worker
        job = conn.execute(_CLAIM[bool(request.worker)], params).first()
        if job is None:
            raise _refusal(conn, request, now)
        inst = _instance_state(conn.execute(_INSTANCE, {"ik": job.instance_key}).first())
        move = Movement(inst, deploy.definition(job.process_pk), now)
        answer = _move_on(request, job, inst, move, now, open_element=job.element_instance_key)
        move.flush()
        conn.execute(_SAVE_INSTANCE, {"ik0": inst.key, "v0": inst.variables, "n0": inst.active_tokens,
                                      "s0": inst.state, "e0": inst.ended_at})
        move.announce_jobs()
    return answer
