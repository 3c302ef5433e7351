"""Project tables (projects, members, records, staged import rows, project jobs, files, rules, scenarios)."""
import uuid

from sqlalchemy import (BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.extensions import db
from app.types import JSONType, UTCDateTime

STATUSES = ("Queued", "Running", "Completed", "Failed", "Cancelled")
ACTIVE = ("Queued", "Running")
ROLES = ("owner", "member")


def _uuid() -> str:
    return str(uuid.uuid4())


class Project(db.Model):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    key_field: Mapped[str] = mapped_column(String(200), nullable=False, default="tag")
    # JSONB does not keep key order: the column order of imports, for exports
    columns: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)


class ProjectMember(db.Model):
    __tablename__ = "project_members"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="member")
    created_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)


class Record(db.Model):
    __tablename__ = "project_records"
    __table_args__ = (UniqueConstraint("project_id", "key", name="uq_project_records_key"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    data: Mapped[dict] = mapped_column(JSONType, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)
    updated_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)


class ImportRow(db.Model):
    """An import's parsed good rows, staged in short transactions until the completing one merges them."""
    __tablename__ = "project_import_rows"
    job_id: Mapped[str] = mapped_column(ForeignKey("project_jobs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    data: Mapped[dict] = mapped_column(JSONType, nullable=False)


class Rule(db.Model):
    __tablename__ = "project_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False,
                                            index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    field: Mapped[str] = mapped_column(String(200), nullable=False)
    params: Mapped[dict] = mapped_column(JSONType, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)


class Scenario(db.Model):
    __tablename__ = "project_scenarios"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False,
                                            index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    assertions: Mapped[list] = mapped_column(JSONType, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)


class Job(db.Model):
    """A project background job; `retry_at` is set while it waits for an RQ retry or scheduled time."""
    __tablename__ = "project_jobs"
    __table_args__ = (Index("ix_project_jobs_project_status", "project_id", "status"),
                      Index("ix_project_jobs_status_created", "status", "created_at"))
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="Queued")
    progress: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    params: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    result: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    retry_at = mapped_column(UTCDateTime, nullable=True)
    created_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)
    started_at = mapped_column(UTCDateTime, nullable=True)
    completed_at = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True,
                                                   index=True)
    rq_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    worker_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class ProjectFile(db.Model):
    """Uploads and exports live in the database so that web and worker may run on different machines."""
    __tablename__ = "project_files"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=True,
                                                   index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("project_jobs.id", ondelete="CASCADE"), nullable=True,
                                               index=True)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)  # "upload" or "output"
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(128), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), nullable=False)
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at = mapped_column(UTCDateTime, nullable=False, default=clock.utcnow)
