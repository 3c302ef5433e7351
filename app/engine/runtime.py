"""Token movement: what happens when a token enters an element, inside the caller's transaction.

The instance row is locked by the caller. A token entering a service task creates an element
instance and a job and stops there (a wait state); gateways and events are passed through at
once. `Instance.active_tokens` counts the paths still running: a fork adds, an end event or a
token absorbed by a join subtracts; at zero the instance is completed.
"""
from sqlalchemy import func, select, update

from app import clock
from app.engine import bpmn, incidents, tx
from app.engine.models import ACTIVATABLE, ElementInstance, Incident, Instance, Job, JobHistory
from app.extensions import db
from app.ids import new_key

MAX_STEPS = 10_000  # a cycle of gateways with no wait state would otherwise spin forever


class Movement:
    def __init__(self, instance: Instance, defn: bpmn.ProcessDefinition, now=None):
        self.instance = instance
        self.defn = defn
        self.now = now or clock.utcnow()
        self.next_activities: list[dict] = []
        self.jobs: list[Job] = []
        self.incidents: list[Incident] = []
        self.steps = 0

    # -- entering elements ----------------------------------------------------------------------

    def start(self) -> None:
        self.enter(self.defn.start_element_id, new_key("token"), record=False)

    def enter(self, element_id: str, token_id: str, record: bool = True) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise RuntimeError(f"process {self.defn.process_id} loops without a wait state")
        el = self.defn.elements[element_id]
        if record:
            self.next_activities.append({"element_id": el.id, "element_type": el.type, "element_name": el.name})
        if el.type == bpmn.TASK:
            self._create_job(el, self._element(el, token_id, "ACTIVE"))
        elif el.type == bpmn.END:
            self._element(el, token_id, "COMPLETED")
            self._token_ended()
        elif el.type == bpmn.AND and len(el.incoming) > 1:
            self._arrive_at_join(el, token_id)
        elif el.type == bpmn.XOR:
            try:
                flows = bpmn.next_flows_from(self.defn, el.id, self.instance.variables)
            except bpmn.NoPathError as exc:
                ei = self._element(el, token_id, "ACTIVE")
                self.incident("CONDITION_ERROR", el.id, ei.key, str(exc))
                return
            self._element(el, token_id, "COMPLETED")
            self.take(flows, token_id)
        else:  # start event, forking parallel gateway, boundary event
            self._element(el, token_id, "COMPLETED")
            self.leave(el.id, token_id)

    def leave(self, element_id: str, token_id: str) -> None:
        self.take(bpmn.next_flows_from(self.defn, element_id, self.instance.variables), token_id)

    def take(self, flows: list[bpmn.Flow], token_id: str) -> None:
        tokens = [token_id] + [new_key("token") for _ in flows[1:]]
        self.instance.active_tokens += len(flows) - 1
        for flow, token in zip(flows, tokens):
            self.enter(flow.target, token)

    def _arrive_at_join(self, el: bpmn.Element, token_id: str) -> None:
        waiting = db.session.scalar(select(func.count()).select_from(ElementInstance).where(
            ElementInstance.instance_key == self.instance.key, ElementInstance.element_id == el.id,
            ElementInstance.state == "ACTIVE"))
        if waiting + 1 < len(el.incoming):
            self._element(el, token_id, "ACTIVE")  # this token waits for its siblings
            self._token_ended()
            return
        db.session.execute(update(ElementInstance).where(
            ElementInstance.instance_key == self.instance.key, ElementInstance.element_id == el.id,
            ElementInstance.state == "ACTIVE").values(state="COMPLETED", left_at=self.now))
        self._element(el, token_id, "COMPLETED")
        self.leave(el.id, token_id)

    def _token_ended(self) -> None:
        self.instance.active_tokens -= 1
        if self.instance.active_tokens <= 0:
            self.instance.state = "COMPLETED"
            self.instance.ended_at = self.now
            tx.instance_event("process_instance.completed", tenant=self.instance.tenant,
                              instance_key=self.instance.key)

    # -- leaving a task ------------------------------------------------------------------------

    def complete_task(self, job: Job) -> None:
        self._close_element(job.element_instance_key, "COMPLETED")
        self.leave(job.element_id, job.token_id)

    def catch_error(self, job: Job, boundary: bpmn.Element) -> None:
        self._close_element(job.element_instance_key, "TERMINATED")
        self.enter(boundary.id, job.token_id)

    def _close_element(self, key: str, state: str) -> None:
        db.session.execute(update(ElementInstance).where(ElementInstance.key == key)
                           .values(state=state, left_at=self.now))

    # -- records ---------------------------------------------------------------------------------

    def _element(self, el: bpmn.Element, token_id: str, state: str) -> ElementInstance:
        ei = ElementInstance(key=new_key("elem"), instance_key=self.instance.key, element_id=el.id,
                             element_type=el.type, token_id=token_id, state=state, entered_at=self.now,
                             left_at=None if state == "ACTIVE" else self.now)
        db.session.add(ei)
        return ei

    def _create_job(self, el: bpmn.Element, ei: ElementInstance) -> None:
        inst = self.instance
        job = Job(key=new_key("job"), tenant=inst.tenant, type=el.job_type, state=ACTIVATABLE,
                  instance_key=inst.key, process_id=inst.process_id, process_version=inst.version,
                  process_pk=inst.process_pk, element_id=el.id, element_instance_key=ei.key,
                  token_id=ei.token_id, custom_headers=dict(el.headers), retries=el.retries,
                  original_retries=el.retries, attempts=0, created_at=self.now, available_at=self.now)
        db.session.add(job)
        db.session.add(JobHistory(job_key=job.key, at=self.now, action="JOB_CREATED",
                                  details={"details": f"Job created for {el.name or el.id}"}))
        self.jobs.append(job)
        tx.job_event("job.created", job_key=job.key, job_type=job.type, tenant=job.tenant, instance_key=inst.key)

    def incident(self, type_: str, element_id: str, element_instance_key: str | None, message: str,
                 job: Job | None = None, error_code: str | None = None) -> Incident:
        inc = incidents.open_incident(self.instance, type_, element_id, element_instance_key, message,
                                      job=job, error_code=error_code, now=self.now)
        self.incidents.append(inc)
        return inc

    def announce_jobs(self) -> None:
        """After the movement: wake waiting workers, one message per job type."""
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job.type] = counts.get(job.type, 0) + 1
        for job_type, count in counts.items():
            tx.wake(tenant=self.instance.tenant, job_type=job_type, count=count)
