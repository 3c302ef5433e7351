"""What the Jobs page lists, and its bulk actions: the project jobs services, filtered and paged.

Who may see which job stays the projects domain's rule (`visible_jobs_clause`); this module only adds
the page's filters and paging, which `jobs.list` does not offer.
"""
from dataclasses import dataclass

from sqlalchemy import func, select

from app.auth.models import User
from app.errors import AppError
from app.extensions import db
from app.projects import jobs, registry
from app.projects import service as projects
from app.projects.models import ACTIVE, STATUSES, Job, Project

PER_PAGE = 25
BULK_LIMIT = 500
RETRYABLE = ("Failed", "Cancelled")


@dataclass
class JobFilter:
    status: str | None = None
    type: str | None = None
    project_id: str | None = None

    @classmethod
    def from_args(cls, args) -> "JobFilter":
        status = args.get("status") or None
        kind = args.get("type") or None
        return cls(status=status if status in STATUSES else None,
                   type=kind if kind in registry.names() else None,
                   project_id=args.get("project") or None)

    def as_args(self) -> dict:
        return {k: v for k, v in (("status", self.status), ("type", self.type), ("project", self.project_id)) if v}


def _query(user: User, flt: JobFilter, statuses=None):
    query = select(Job)
    clause = projects.visible_jobs_clause(user)
    if clause is not None:
        query = query.where(clause)
    if flt.project_id:
        projects.get_or_404(project_id=flt.project_id, user=user)
        query = query.where(Job.project_id == flt.project_id)
    if flt.status:
        query = query.where(Job.status == flt.status)
    if flt.type:
        query = query.where(Job.type == flt.type)
    if statuses:
        query = query.where(Job.status.in_(statuses))
    return query


def page(*, user: User, flt: JobFilter, number: int = 1, per_page: int = PER_PAGE) -> dict:
    query = _query(user, flt)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.order_by(Job.created_at.desc(), Job.id)
                              .offset((number - 1) * per_page).limit(per_page + 1)).all()
    names = project_names([j.project_id for j in rows])
    return {"jobs": rows[:per_page], "has_next": len(rows) > per_page, "total": total, "page": number,
            "project_names": names}


def counts(*, user: User, flt: JobFilter) -> dict:
    """How many jobs of each status match the filter's type and project (its status aside)."""
    query = _query(user, JobFilter(type=flt.type, project_id=flt.project_id)).subquery()
    rows = db.session.execute(select(query.c.status, func.count()).group_by(query.c.status)).all()
    found = dict(rows)
    return {status: found.get(status, 0) for status in STATUSES}


def project_names(ids) -> dict:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(db.session.execute(select(Project.id, Project.name).where(Project.id.in_(ids))).all())


def bulk(*, user: User, action: str, ids: list[str] | None = None, flt: JobFilter | None = None) -> dict:
    """Cancel or retry the selected jobs, or every job matching the filter; each job on its own."""
    eligible = ACTIVE if action == "cancel" else RETRYABLE
    if ids is None:
        query = _query(user, flt or JobFilter(), statuses=eligible).with_only_columns(Job.id)
        ids = list(db.session.scalars(query.order_by(Job.created_at).limit(BULK_LIMIT)))
    done, skipped = 0, 0
    for job_id in ids[:BULK_LIMIT]:
        try:
            if action == "cancel":
                jobs.cancel(job_id=job_id, user=user, wait_seconds=0)
            else:
                jobs.retry(job_id=job_id, user=user)
            done += 1
        except AppError:  # not in a state for this action, or not the user's: counted, not fatal
            skipped += 1
    return {"action": action, "done": done, "skipped": skipped}
