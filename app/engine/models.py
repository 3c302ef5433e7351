"""Engine tables: deployed processes, their instances, element instances, jobs, job history, incidents.

Keys follow the spec (`srv1-…` instances, `srv1-elem-…`, `srv1-token-…`, `srv1-job-…`,
`srv1-incident-…`). Every row carries its tenant; a key sees only its tenant's rows.
"""
from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import JSONType, UTCDateTime

KEY = String(64)

# Job states as stored. ACTIVATED jobs keep `available_at = deadline`, so one condition
# (`state IN ACTIVATABLE_STATES AND available_at <= now`) finds new, backed-off and timed-out jobs.
ACTIVATABLE, ACTIVATED, COMPLETED = "ACTIVATABLE", "ACTIVATED", "COMPLETED"
FAILED, ERROR_THROWN, CANCELLED = "FAILED", "ERROR_THROWN", "CANCELLED"
ACTIVATABLE_STATES = (ACTIVATABLE, ACTIVATED)
OPEN_STATES = (ACTIVATABLE, ACTIVATED)
OPEN_PREDICATE = "state IN ('ACTIVATABLE', 'ACTIVATED')"  # must match the activate query's text
IN_FLIGHT_PREDICATE = "state = 'ACTIVATED'"  # must match the timeout sweeper's text
# What the API shows (the spec's status names).
STATUS = {ACTIVATABLE: "ACTIVATABLE", ACTIVATED: "ACTIVE", COMPLETED: "COMPLETED", FAILED: "FAILED",
          ERROR_THROWN: "ERROR_THROWN", CANCELLED: "CANCELLED"}
STATE_OF_STATUS = {v: k for k, v in STATUS.items()}


def by_key(columns, key, tenant) -> tuple:
    """Conditions for a tenant's row by its key (`columns`: a model or a table's `.c`).

    The tenant is compared with `IS NOT DISTINCT FROM`, the same test as `=` for a non-null column,
    but one no index can serve: the planner then always reaches the row by the key's unique index.
    With `=`, statistics that had not yet seen a tenant (a new one) priced its (tenant, …) index as
    if it held one row, and lookups walked every row of that tenant instead.
    """
    return columns.key == key, columns.tenant.is_not_distinct_from(tenant)


class Process(db.Model):
    __tablename__ = "engine_processes"
    __table_args__ = (UniqueConstraint("tenant", "process_id", "version"),
                      UniqueConstraint("tenant", "process_id", "checksum"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), nullable=False)
    process_id: Mapped[str] = mapped_column(String(255), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    checksum: Mapped[str] = mapped_column(String(64), nullable=False)
    xml: Mapped[str] = mapped_column(Text, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False)


class Instance(db.Model):
    __tablename__ = "engine_instances"
    __table_args__ = (Index("ix_engine_instances_tenant_created", "tenant", "created_at"),)
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), nullable=False)
    process_pk: Mapped[int] = mapped_column(ForeignKey("engine_processes.id"), nullable=False)
    process_id: Mapped[str] = mapped_column(String(255), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # ACTIVE, COMPLETED, CANCELLED
    variables: Mapped[dict] = mapped_column(JSONType, nullable=False)
    active_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False)
    ended_at = mapped_column(UTCDateTime, nullable=True)


class ElementInstance(db.Model):
    __tablename__ = "engine_element_instances"
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    # No foreign keys on the two append-only logs: rows are written in the same flush as their
    # parent, and the unit of work orders inserts across tables only through relationships.
    instance_key: Mapped[str] = mapped_column(KEY, index=True, nullable=False)
    element_id: Mapped[str] = mapped_column(String(255), nullable=False)
    element_type: Mapped[str] = mapped_column(String(32), nullable=False)
    token_id: Mapped[str] = mapped_column(KEY, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # ACTIVE, COMPLETED, TERMINATED
    entered_at = mapped_column(UTCDateTime, nullable=False)
    left_at = mapped_column(UTCDateTime, nullable=True)


class Job(db.Model):
    __tablename__ = "engine_jobs"
    __table_args__ = (
        # Only open jobs are in it, in activation order: the activate query is one range scan.
        Index("ix_engine_jobs_activation", "tenant", "type", "available_at",
              postgresql_where=text(OPEN_PREDICATE), sqlite_where=text(OPEN_PREDICATE)),
        # By state, then end time: the stats of the last minutes read only the jobs that ended lately.
        Index("ix_engine_jobs_tenant_state_ended", "tenant", "state", "ended_at"),
        Index("ix_engine_jobs_tenant_created", "tenant", "created_at", "key"),
        # The list's filters by type and by worker, newest first: a rare type or a worker with few jobs
        # would otherwise read the tenant's every job.
        Index("ix_engine_jobs_tenant_type_created", "tenant", "type", "created_at", "key"),
        Index("ix_engine_jobs_tenant_worker_created", "tenant", "worker", "created_at", "key",
              postgresql_where=text("worker IS NOT NULL"), sqlite_where=text("worker IS NOT NULL")),
        # Jobs in flight by deadline (ACTIVATED keeps `available_at = deadline`): the timeout sweep reads
        # only those past their deadline, however large the backlog of activatable jobs.
        Index("ix_engine_jobs_in_flight_deadline", "available_at",
              postgresql_where=text(IN_FLIGHT_PREDICATE), sqlite_where=text(IN_FLIGHT_PREDICATE)),
    )
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), nullable=False)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    instance_key: Mapped[str] = mapped_column(ForeignKey("engine_instances.key", ondelete="CASCADE"),
                                              index=True, nullable=False)
    process_id: Mapped[str] = mapped_column(String(255), nullable=False)
    process_version: Mapped[int] = mapped_column(Integer, nullable=False)
    process_pk: Mapped[int] = mapped_column(Integer, nullable=False)
    element_id: Mapped[str] = mapped_column(String(255), nullable=False)
    element_instance_key: Mapped[str] = mapped_column(KEY, nullable=False)
    token_id: Mapped[str] = mapped_column(KEY, nullable=False)
    custom_headers: Mapped[dict] = mapped_column(JSONType, nullable=False)
    retries: Mapped[int] = mapped_column(Integer, nullable=False)
    original_retries: Mapped[int] = mapped_column(Integer, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # activations so far
    worker: Mapped[str | None] = mapped_column(String(100), nullable=True)
    max_jobs_for_worker: Mapped[int | None] = mapped_column(Integer, nullable=True)
    timeout_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at = mapped_column(UTCDateTime, nullable=False)
    available_at = mapped_column(UTCDateTime, nullable=False)
    activated_at = mapped_column(UTCDateTime, nullable=True)
    deadline = mapped_column(UTCDateTime, nullable=True)
    ended_at = mapped_column(UTCDateTime, nullable=True)  # completed, failed for good, error thrown, cancelled
    retry_backoff_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(255), nullable=True)
    result_variables: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    completed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    incident_key: Mapped[str | None] = mapped_column(KEY, nullable=True)


class JobHistory(db.Model):
    __tablename__ = "engine_job_history"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    job_key: Mapped[str] = mapped_column(KEY, index=True, nullable=False)
    at = mapped_column(UTCDateTime, nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    worker: Mapped[str | None] = mapped_column(String(100), nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    backoff_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict | None] = mapped_column(JSONType, nullable=True)


class Incident(db.Model):
    __tablename__ = "engine_incidents"
    __table_args__ = (Index("ix_engine_incidents_tenant_state", "tenant", "state", "created_at"),)
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), nullable=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False)  # JOB_FAILURE, UNHANDLED_ERROR_EVENT, …
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # OPEN, RESOLVED
    instance_key: Mapped[str] = mapped_column(ForeignKey("engine_instances.key", ondelete="CASCADE"),
                                              index=True, nullable=False)
    element_id: Mapped[str] = mapped_column(String(255), nullable=False)
    element_instance_key: Mapped[str | None] = mapped_column(KEY, nullable=True)
    job_key: Mapped[str | None] = mapped_column(KEY, nullable=True, index=True)
    job_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(255), nullable=True)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False)
    resolved_at = mapped_column(UTCDateTime, nullable=True)
