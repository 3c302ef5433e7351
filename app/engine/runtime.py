"""Token movement: what happens when a token enters an element, inside the caller's transaction.

The instance row is locked by the caller. A token entering a service task creates an element
instance and a job and stops there (a wait state); gateways and events are passed through at
once. `Instance.active_tokens` counts the paths still running: a fork adds, an end event or a
token absorbed by a join subtracts; at zero the instance is completed.

Rows are not written one by one through the ORM: element instances, jobs and history rows are
buffered and written by `flush()` (one executemany per table, Core statements), which every
caller runs before it commits; a join flushes first because it counts rows in the database.
"""
from sqlalchemy import bindparam, func, select, update

from app import clock
from app.engine import bpmn, incidents, tx
from app.engine.models import ACTIVATABLE, ElementInstance, Incident, Instance, Job, JobHistory
from app.extensions import db
from app.ids import new_key

MAX_STEPS = 10_000  # a cycle of gateways with no wait state would otherwise spin forever

_EI = ElementInstance.__table__
_INSERT_INSTANCE = Instance.__table__.insert()
_INSERT_ELEMENTS = _EI.insert()
_INSERT_JOBS = Job.__table__.insert()
_INSERT_HISTORY = JobHistory.__table__.insert()
_CLOSE_ELEMENT = (update(_EI).where(_EI.c.key == bindparam("k"))
                  .values(state=bindparam("s"), left_at=bindparam("at", type_=_EI.c.left_at.type)))
_AT_JOIN = (_EI.c.instance_key == bindparam("ik"), _EI.c.element_id == bindparam("el"), _EI.c.state == "ACTIVE")
_COUNT_AT_JOIN = select(func.count()).select_from(_EI).where(*_AT_JOIN)
_PASS_JOIN = update(_EI).where(*_AT_JOIN).values(state="COMPLETED", left_at=bindparam("at", type_=_EI.c.left_at.type))


class InstanceState:
    """An instance's columns as plain attributes (the hot paths do not load or track ORM objects)."""
    __slots__ = ("key", "tenant", "process_pk", "process_id", "version", "state", "variables", "active_tokens",
                 "created_at", "ended_at")

    def __init__(self, **values):
        for name in self.__slots__:
            setattr(self, name, values.get(name))

    def row(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


class Movement:
    def __init__(self, instance: Instance | InstanceState, defn: bpmn.ProcessDefinition, now=None,
                 insert_instance: bool = False, conn=None):
        """insert_instance: the instance is new and written with the movement's first rows. conn: the
        Connection of the caller's transaction when it is not the ORM session's (tx.write_on)."""
        self.instance = instance
        self.conn = conn
        self._insert_instance = insert_instance
        self.instance_saved_as: dict | None = None  # the instance row as written by this movement
        self.defn = defn
        self.now = now or clock.utcnow()
        self.next_activities: list[dict] = []
        self.jobs: list[dict] = []  # rows of the jobs created
        self.incidents: list[Incident] = []
        self.steps = 0
        self._to_enter: list[tuple] = []  # (element id, token id, record) still to enter
        self._walking = False
        self._elements: list[dict] = []
        self._history: list[dict] = []
        self._jobs_written = 0

    # -- entering elements ----------------------------------------------------------------------

    def start(self) -> None:
        self.enter(self.defn.start_element_id, new_key("token"), record=False)

    def enter(self, element_id: str, token_id: str, record: bool = True) -> None:
        self._to_enter.append((element_id, token_id, record))
        self._walk()

    def _walk(self) -> None:
        """Enter what is queued, depth first (a stack, not recursion: a cycle of gateways with no wait
        state must end at MAX_STEPS with a clear error, not at Python's recursion limit)."""
        if self._walking:
            return
        self._walking = True
        try:
            while self._to_enter:
                self._enter_one(*self._to_enter.pop())
        finally:
            self._walking = False

    def _enter_one(self, element_id: str, token_id: str, record: bool) -> None:
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
                self.incident("CONDITION_ERROR", el.id, ei["key"], str(exc))
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
        # Stacked last first, so the first flow's path is walked first, as a recursive walk would.
        self._to_enter.extend((flow.target, token, True) for flow, token in reversed(list(zip(flows, tokens))))
        self._walk()

    def _connection(self):
        return self.conn if self.conn is not None else db.session.connection()

    def _arrive_at_join(self, el: bpmn.Element, token_id: str) -> None:
        self.flush()  # siblings that arrived in this movement are counted too
        conn = self._connection()
        at_join = {"ik": self.instance.key, "el": el.id}
        waiting = conn.execute(_COUNT_AT_JOIN, at_join).scalar()
        if waiting + 1 < len(el.incoming):
            self._element(el, token_id, "ACTIVE")  # this token waits for its siblings
            self._token_ended()
            return
        conn.execute(_PASS_JOIN, {**at_join, "at": self.now})
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

    def complete_task(self, element_id: str, token_id: str, element_instance_key: str | None = None) -> None:
        """The task's element instance is closed by the caller when element_instance_key is None."""
        if element_instance_key is not None:
            self._close_element(element_instance_key, "COMPLETED")
        self.leave(element_id, token_id)

    def catch_error(self, job: Job, boundary: bpmn.Element) -> None:
        self._close_element(job.element_instance_key, "TERMINATED")
        self.enter(boundary.id, job.token_id)

    def _close_element(self, key: str, state: str) -> None:
        self._connection().execute(_CLOSE_ELEMENT, {"k": key, "s": state, "at": self.now})

    # -- records ---------------------------------------------------------------------------------

    def _element(self, el: bpmn.Element, token_id: str, state: str) -> dict:
        ei = {"key": new_key("elem"), "instance_key": self.instance.key, "element_id": el.id,
              "element_type": el.type, "token_id": token_id, "state": state, "entered_at": self.now,
              "left_at": None if state == "ACTIVE" else self.now}
        self._elements.append(ei)
        return ei

    def _create_job(self, el: bpmn.Element, ei: dict) -> None:
        inst = self.instance
        job = {"key": new_key("job"), "tenant": inst.tenant, "type": el.job_type, "state": ACTIVATABLE,
               "instance_key": inst.key, "process_id": inst.process_id, "process_version": inst.version,
               "process_pk": inst.process_pk, "element_id": el.id, "element_instance_key": ei["key"],
               "token_id": ei["token_id"], "custom_headers": dict(el.headers), "retries": el.retries,
               "original_retries": el.retries, "attempts": 0, "created_at": self.now, "available_at": self.now}
        self.jobs.append(job)
        self.history(job["key"], "JOB_CREATED", details={"details": f"Job created for {el.name or el.id}"})
        tx.job_event("job.created", job_key=job["key"], job_type=job["type"], tenant=inst.tenant,
                     instance_key=inst.key)

    def history(self, job_key: str, action: str, *, worker: str | None = None, attempt: int | None = None,
                error: str | None = None, backoff_ms: int | None = None, details: dict | None = None) -> None:
        """Buffer a job history row, written by flush() with the movement's other rows."""
        self._history.append({"job_key": job_key, "at": self.now, "action": action, "worker": worker,
                              "attempt": attempt, "error": error, "backoff_ms": backoff_ms, "details": details})

    def _instance_row(self) -> dict:
        self._insert_instance = False
        self.instance_saved_as = self.instance.row()
        return self.instance_saved_as

    def take_rows(self) -> list[tuple]:
        """Hand over the buffered rows (table, rows) for the caller to write itself, in flush()'s order."""
        out = [(_EI, self._elements), (Job.__table__, self.jobs[self._jobs_written:]),
               (JobHistory.__table__, self._history)]
        if self._insert_instance:
            out.insert(0, (Instance.__table__, [self._instance_row()]))
        self._elements, self._history, self._jobs_written = [], [], len(self.jobs)
        return [(table, rows) for table, rows in out if rows]

    def flush(self) -> None:
        """Write the buffered rows: one executemany per table (elements before the jobs that name them)."""
        conn = None
        if self._insert_instance:
            conn = self._connection()
            conn.execute(_INSERT_INSTANCE, self._instance_row())
        if self._elements:
            conn = self._connection()
            conn.execute(_INSERT_ELEMENTS, self._elements)
            self._elements = []
        if len(self.jobs) > self._jobs_written:
            conn = conn or self._connection()
            conn.execute(_INSERT_JOBS, self.jobs[self._jobs_written:])
            self._jobs_written = len(self.jobs)
        if self._history:
            (conn or self._connection()).execute(_INSERT_HISTORY, self._history)
            self._history = []

    def incident(self, type_: str, element_id: str, element_instance_key: str | None, message: str,
                 job: Job | None = None, error_code: str | None = None) -> Incident:
        self.flush()  # the incident row (ORM) names an element instance written here
        inc = incidents.open_incident(self.instance, type_, element_id, element_instance_key, message,
                                      job=job, error_code=error_code, now=self.now, conn=self.conn)
        self.incidents.append(inc)
        return inc

    def announce_jobs(self) -> None:
        """After the movement: wake waiting workers, one message per job type."""
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job["type"]] = counts.get(job["type"], 0) + 1
        for job_type, count in counts.items():
            tx.wake(tenant=self.instance.tenant, job_type=job_type, count=count)
