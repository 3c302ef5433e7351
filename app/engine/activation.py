"""Activation: hand activatable jobs of a type to one worker, exactly once while they are active.

PostgreSQL: one statement per batch — `UPDATE engine_jobs … FROM (SELECT … FOR UPDATE SKIP
LOCKED LIMIT n) … RETURNING …` with the instance variables read and the batch's history rows
inserted in the same statement (CTEs) — so concurrent workers take disjoint jobs. Being one
statement, it runs as its own transaction (autocommit: no BEGIN and COMMIT round trips).
SQLite: the same SELECT and UPDATE inside a `BEGIN IMMEDIATE` transaction, which
serialises writers.

A job is activatable when it is ACTIVATABLE (new, backed off after a failure, released by
resolving an incident) or ACTIVATED with its deadline passed (the worker timed out and the
sweeper has not released it yet); both keep `available_at` (for ACTIVATED: the deadline), so one
range scan of the partial index finds them. A timed-out job re-activated here gets a
JOB_TIMED_OUT history row and spends no retry.
"""
from datetime import timedelta

from sqlalchemy import bindparam, func, insert, literal, select, text, union_all, update

from app import clock
from app.engine import driver, tx
from app.engine.models import ACTIVATED, OPEN_PREDICATE, Instance, Job, JobHistory
from app.extensions import db

_J, _I = Job.__table__, Instance.__table__
_OPEN = text(OPEN_PREDICATE.replace("state", "engine_jobs.state", 1))
_NOW = bindparam("now", type_=_J.c.available_at.type)
_DUE = (_J.c.tenant == bindparam("t"), _J.c.type == bindparam("ty"), _OPEN)
_PICK_COLUMNS = (_J.c.key, _J.c.state, _J.c.worker, _J.c.deadline, _J.c.available_at)
_SET = dict(state=ACTIVATED, worker=bindparam("w"), activated_at=_NOW,
            deadline=bindparam("dl", type_=_J.c.deadline.type), available_at=bindparam("dl2", type_=_J.c.deadline.type),
            timeout_ms=bindparam("tm"), max_jobs_for_worker=bindparam("mx"), attempts=_J.c.attempts + 1)
_RETURN = (_J.c.key, _J.c.type, _J.c.instance_key, _J.c.element_id, _J.c.element_instance_key, _J.c.retries,
           _J.c.custom_headers, _J.c.created_at, _J.c.attempts)
_VARIABLES = select(_I.c.variables).where(_I.c.key == _J.c.instance_key).scalar_subquery().label("variables")
_INSERT_HISTORY = JobHistory.__table__.insert()
_UPCOMING = select(func.min(_J.c.available_at)).where(*_DUE, _J.c.available_at > _NOW)


def _pick(limit: int, lock: bool):
    query = select(*_PICK_COLUMNS).where(*_DUE, _J.c.available_at <= _NOW).order_by(_J.c.available_at).limit(limit)
    return query.with_for_update(skip_locked=True) if lock else query


_H = JobHistory.__table__
_TIMED_OUT_DETAILS = {"details": "Job deadline passed before completion"}
_ACTIVATED_DETAILS = {"details": "Job activated by worker"}


def _activate_statement(limit: int):
    """PostgreSQL: pick, lock, update, read the variables and write the history in one round trip."""
    picked = _pick(limit, lock=True).cte("picked")
    updated = (update(_J).where(_J.c.key == picked.c.key).values(**_SET)
               .returning(*_RETURN, picked.c.state.label("old_state"), picked.c.worker.label("old_worker"),
                          picked.c.deadline.label("old_deadline"), picked.c.available_at.label("due"), _VARIABLES)
               .cte("activated"))
    rows = union_all(
        select(updated.c.key, updated.c.old_deadline, literal("JOB_TIMED_OUT", _H.c.action.type),
               updated.c.old_worker, updated.c.attempts - 1, literal(_TIMED_OUT_DETAILS, _H.c.details.type))
        .where(updated.c.old_state == ACTIVATED),
        select(updated.c.key, _NOW, literal("JOB_ACTIVATED", _H.c.action.type), bindparam("w", type_=_H.c.worker.type),
               updated.c.attempts, literal(_ACTIVATED_DETAILS, _H.c.details.type)))
    history = insert(_H).from_select(["job_key", "at", "action", "worker", "attempt", "details"], rows)
    return select(updated).add_cte(history.returning(_H.c.id).cte("history"))


_STATEMENTS: dict[int, driver.Statement] = {}


def _rows(conn, params: dict, limit: int) -> list:
    if tx.is_postgres():
        stmt = _STATEMENTS.get(limit)
        if stmt is None:
            stmt = _STATEMENTS[limit] = driver.Statement(_activate_statement(limit))
        with driver.on_its_own(conn):
            rows = stmt.execute(conn, params).fetchall()
        return sorted(rows, key=lambda r: r.due)
    picked = conn.execute(_pick(limit, lock=False), params).all()
    if not picked:
        return []
    keys = [r.key for r in picked]
    conn.execute(update(_J).where(_J.c.key.in_(keys)).values(**_SET), params)
    fresh = {r.key: r for r in conn.execute(select(*_RETURN, _VARIABLES).where(_J.c.key.in_(keys)))}
    return [_Activated(fresh[p.key], p) for p in picked]


class _Activated:
    """SQLite: an updated job row with the values it had when picked."""

    def __init__(self, row, picked):
        self._row = row
        self.old_state, self.old_worker, self.old_deadline = picked.state, picked.worker, picked.deadline

    def __getattr__(self, name):
        return getattr(self._row, name)


def activate_now(*, tenant: str, job_type: str, worker: str, max_jobs: int, timeout_ms: int,
                 fetch_variables: list | None = None, want_upcoming: bool = True) -> tuple[list[dict], object]:
    """Activate up to max_jobs now. Returns (jobs, when the next one becomes activatable or None;
    None also when want_upcoming is False)."""
    with tx.write():
        conn = db.session.connection()
        now = clock.utcnow()
        deadline = now + timedelta(milliseconds=timeout_ms)
        params = {"t": tenant, "ty": job_type, "now": now, "w": worker, "dl": deadline, "dl2": deadline,
                  "tm": timeout_ms, "mx": max_jobs}
        rows = _rows(conn, params, max_jobs)
        if not rows:
            return [], conn.execute(_UPCOMING, params).scalar() if want_upcoming else None
        history = []  # PostgreSQL wrote it in the same statement
        for r in rows:
            if r.old_state == ACTIVATED:  # its worker's deadline passed: released without spending a retry
                history.append({"job_key": r.key, "at": r.old_deadline, "action": "JOB_TIMED_OUT",
                                "worker": r.old_worker, "attempt": r.attempts - 1, "error": None,
                                "backoff_ms": None, "details": _TIMED_OUT_DETAILS})
                tx.job_event("job.timed_out", job_key=r.key, job_type=r.type, tenant=tenant,
                             instance_key=r.instance_key, worker=r.old_worker)
            history.append({"job_key": r.key, "at": now, "action": "JOB_ACTIVATED", "worker": worker,
                            "attempt": r.attempts, "error": None, "backoff_ms": None, "details": _ACTIVATED_DETAILS})
            tx.job_event("job.activated", job_key=r.key, job_type=r.type, tenant=tenant,
                         instance_key=r.instance_key, worker=worker)
        if not tx.is_postgres():
            conn.execute(_INSERT_HISTORY, history)
    wanted = set(fetch_variables or ())
    deadline_iso, now_iso = clock.iso(deadline), clock.iso(now)
    return [{
        "key": r.key, "type": r.type, "process_instance_id": r.instance_key, "element_id": r.element_id,
        "element_instance_id": r.element_instance_key, "worker": worker, "retries": r.retries,
        "deadline": deadline_iso,
        "variables": {k: v for k, v in r.variables.items() if k in wanted} if wanted else r.variables,
        "custom_headers": r.custom_headers, "created_at": clock.iso(r.created_at), "activated_at": now_iso,
    } for r in rows], None
