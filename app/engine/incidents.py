"""Incidents: a job failed with no retries left, a BPMN error nothing caught, or a gateway with no way out.

Resolving one puts its job back in play (ACTIVATABLE with the given retries, default 1), or for a
gateway incident evaluates the gateway again with the instance's current variables.
"""
from sqlalchemy import select

from app import clock
from app.engine import bpmn, deploy, tx
from app.engine.errors import IncidentNotFound, IncidentNotOpen
from app.engine.models import ACTIVATABLE, ElementInstance, Incident, Instance, Job, JobHistory, by_key
from app.errors import Conflict
from app.extensions import db
from app.ids import new_key

DEFAULT_RESOLVE_RETRIES = 1


def open_incident(inst: Instance, type_: str, element_id: str, element_instance_key: str | None, message: str,
                  *, job: Job | None = None, error_code: str | None = None, now=None, conn=None) -> Incident:
    """`conn`: the Connection of the caller's transaction when it is not the ORM session's (tx.write_on);
    the row is then inserted at once, and the Incident returned is not tracked by the session."""
    row = dict(key=new_key("incident"), tenant=inst.tenant, type=type_, state="OPEN", instance_key=inst.key,
               element_id=element_id, element_instance_key=element_instance_key,
               job_key=job.key if job else None, job_type=job.type if job else None, error_code=error_code,
               message=message, created_at=now or clock.utcnow())
    inc = Incident(**row)
    if conn is None:
        db.session.add(inc)
    else:
        conn.execute(Incident.__table__.insert(), row)
    if job is not None:
        job.incident_key = inc.key
    tx.instance_event("incident.created", tenant=inst.tenant, instance_key=inst.key, incident_key=inc.key,
                      incident_type=type_, job_key=inc.job_key)
    return inc


def list_incidents(*, tenant: str, state: str | None = None, process_instance_id: str | None = None,
                   limit: int = 100) -> list[Incident]:
    query = select(Incident).where(Incident.tenant == tenant)
    if state:
        query = query.where(Incident.state == state)
    if process_instance_id:
        query = query.where(Incident.instance_key == process_instance_id)
    return list(db.session.scalars(query.order_by(Incident.created_at.desc(), Incident.key).limit(limit)))


def get(*, tenant: str, key: str) -> Incident:
    inc = db.session.scalar(select(Incident).where(*by_key(Incident, key, tenant)))
    if inc is None:
        raise IncidentNotFound(details={"incident_key": key})
    return inc


def resolve(*, tenant: str, key: str, retries: int | None = None) -> Incident:
    from app.engine.runtime import Movement
    with tx.write():
        inc = get(tenant=tenant, key=key)
        # The engine's lock order: job, then instance (then the incident, which only they change).
        job = (db.session.scalar(select(Job).where(Job.key == inc.job_key).with_for_update())
               if inc.job_key else None)
        inst = db.session.scalar(select(Instance).where(Instance.key == inc.instance_key).with_for_update())
        db.session.refresh(inc, with_for_update=True)
        if inc.state != "OPEN":
            raise IncidentNotOpen(details={"incident_key": key, "state": inc.state})
        now = clock.utcnow()
        if job is not None:
            job.state, job.retries, job.available_at = ACTIVATABLE, retries or DEFAULT_RESOLVE_RETRIES, now
            job.ended_at, job.deadline, job.incident_key = None, None, None
            db.session.add(JobHistory(job_key=job.key, at=now, action="JOB_INCIDENT_RESOLVED",
                                      details={"details": f"Incident {inc.key} resolved; retries set to {job.retries}"}))
            tx.job_event("job.activatable", job_key=job.key, job_type=job.type, tenant=tenant,
                         instance_key=inst.key, incident_key=inc.key)
            tx.wake(tenant=tenant, job_type=job.type)
        else:
            ei = db.session.get(ElementInstance, inc.element_instance_key)
            move = Movement(inst, deploy.definition(inst.process_pk), now)
            try:
                flows = bpmn.next_flows_from(move.defn, ei.element_id, inst.variables)
            except bpmn.NoPathError as exc:
                raise Conflict(str(exc), {"incident_key": key}, code="INCIDENT_NOT_RESOLVABLE") from None
            ei.state, ei.left_at = "COMPLETED", now
            move.take(flows, ei.token_id)
            move.flush()
            move.announce_jobs()
        inc.state, inc.resolved_at = "RESOLVED", now
        tx.instance_event("incident.resolved", tenant=tenant, instance_key=inst.key, incident_key=inc.key)
        db.session.flush()
        db.session.expunge(inc)
    return inc
