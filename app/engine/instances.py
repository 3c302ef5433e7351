"""Process instances: start, read, cancel."""
from sqlalchemy import select, update

from app import clock
from app.engine import batch, deploy, tx
from app.engine.errors import InstanceNotActive, InstanceNotFound
from app.engine.models import (CANCELLED, OPEN_STATES, ElementInstance, Incident, Instance, Job, JobHistory,
                               by_key)
from app.engine.runtime import InstanceState, Movement
from app.extensions import db
from app.ids import new_key


def start(*, tenant: str, process_id: str, version: int | None = None, variables: dict | None = None) -> dict:
    process = deploy.get(tenant=tenant, process_id=process_id, version=version)
    defn = deploy.definition(process.id)
    with tx.write():
        now = clock.utcnow()
        inst = InstanceState(key=new_key(None, 20), tenant=tenant, process_pk=process.id,
                             process_id=process.process_id, version=process.version, state="ACTIVE",
                             variables=dict(variables or {}), active_tokens=1, created_at=now)
        move = Movement(inst, defn, now, insert_instance=True)
        # Events in causal order: the instance, then what its start created.
        tx.instance_event("process_instance.created", tenant=tenant, instance_key=inst.key,
                          process_id=process.process_id, version=process.version)
        move.start()
        conn = db.session.connection()
        if tx.is_postgres():  # the instance and every new row in one statement
            batch.write(conn, move.take_rows())
        else:
            move.flush()
        if move.instance_saved_as != inst.row():  # written early (a join or incident flushed), then moved on
            conn.execute(update(Instance).where(Instance.key == inst.key).values(
                active_tokens=inst.active_tokens, state=inst.state, ended_at=inst.ended_at))
        move.announce_jobs()
        result = summary(inst)
        result["next_activities"] = move.next_activities
    return result


def summary(inst: Instance) -> dict:
    return {"process_instance_id": inst.key, "process_id": inst.process_id, "version": inst.version,
            "state": inst.state, "variables": inst.variables, "created_at": clock.iso(inst.created_at),
            "ended_at": clock.iso(inst.ended_at)}


def _get(tenant: str, key: str, lock: bool = False) -> Instance:
    query = select(Instance).where(*by_key(Instance, key, tenant))
    if lock:  # read the row again under the lock, not the copy loaded before
        query = query.with_for_update().execution_options(populate_existing=True)
    inst = db.session.scalar(query)
    if inst is None:
        raise InstanceNotFound(details={"process_instance_id": key})
    return inst


def get(*, tenant: str, key: str) -> dict:
    from app.engine import present
    inst = _get(tenant, key)
    elements = db.session.scalars(select(ElementInstance).where(ElementInstance.instance_key == key)
                                  .order_by(ElementInstance.entered_at, ElementInstance.key))
    jobs = db.session.scalars(select(Job).where(Job.instance_key == key).order_by(Job.created_at, Job.key))
    incidents = db.session.scalars(select(Incident).where(Incident.instance_key == key)
                                   .order_by(Incident.created_at))
    return {**summary(inst),
            "element_instances": [{"element_instance_id": e.key, "element_id": e.element_id,
                                   "element_type": e.element_type, "token_id": e.token_id, "state": e.state,
                                   "entered_at": clock.iso(e.entered_at), "left_at": clock.iso(e.left_at)}
                                  for e in elements],
            "jobs": [present.job_summary(j) for j in jobs],
            "incidents": [present.incident(i) for i in incidents]}


def cancel(*, tenant: str, key: str) -> dict:
    with tx.write():
        inst = _get(tenant, key)
        if inst.state != "ACTIVE":
            raise InstanceNotActive(details={"process_instance_id": key, "state": inst.state})
        now = clock.utcnow()
        cancel_jobs = (update(Job).where(Job.instance_key == key, Job.state.in_(OPEN_STATES))
                       .values(state=CANCELLED, ended_at=now).returning(Job.key, Job.type, Job.worker))
        # The engine's lock order: jobs, then the instance. A completion that held one of these
        # jobs may have committed new jobs meanwhile (under the instance lock): the second UPDATE,
        # after the instance lock, cancels those too.
        cancelled = db.session.execute(cancel_jobs).all()
        inst = _get(tenant, key, lock=True)
        if inst.state != "ACTIVE":
            raise InstanceNotActive(details={"process_instance_id": key, "state": inst.state})
        cancelled += db.session.execute(cancel_jobs).all()
        inst.state, inst.ended_at = "CANCELLED", now
        if cancelled:
            db.session.execute(JobHistory.__table__.insert(), [
                {"job_key": k, "at": now, "action": "JOB_CANCELLED", "worker": w,
                 "details": {"details": "Process instance was cancelled"}} for k, _, w in cancelled])
        for job_key, job_type, worker in cancelled:
            tx.job_event("job.cancelled", job_key=job_key, job_type=job_type, tenant=tenant, instance_key=key,
                         worker=worker)
        db.session.execute(update(ElementInstance).where(ElementInstance.instance_key == key,
                                                         ElementInstance.state == "ACTIVE")
                           .values(state="TERMINATED", left_at=now))
        db.session.execute(update(Incident).where(Incident.instance_key == key, Incident.state == "OPEN")
                           .values(state="RESOLVED", resolved_at=now))
        tx.instance_event("process_instance.cancelled", tenant=tenant, instance_key=key)
        result = summary(inst)
        result["cancelled_jobs"] = [k for k, _, _ in cancelled]
    return result
