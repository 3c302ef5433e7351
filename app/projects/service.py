"""Projects and their members, and who may see what: owners and members see a project, admins all."""
from __future__ import annotations

from sqlalchemy import exists, or_, select

from app.auth.models import User
from app.errors import AppError, Conflict, Forbidden, NotFound, ValidationError
from app.extensions import db
from app.projects.models import Job, Project, ProjectMember, Record


class ProjectNotFound(NotFound):
    code, message = "PROJECT_NOT_FOUND", "No such project"


def _member_clause(user: User):
    return or_(Project.owner_id == user.id,
               exists().where(ProjectMember.project_id == Project.id, ProjectMember.user_id == user.id))


def visible_project_ids(user: User):
    """A subquery of the project ids the user may see (None for admins: everything)."""
    if user.is_admin:
        return None
    return select(Project.id).where(_member_clause(user))


def get_or_404(*, project_id: str, user: User) -> Project:
    project = db.session.get(Project, str(project_id))
    if project is None or not can_see(project=project, user=user):
        raise ProjectNotFound()
    return project


def can_see(*, project: Project, user: User) -> bool:
    if user.is_admin or project.owner_id == user.id:
        return True
    return db.session.get(ProjectMember, (project.id, user.id)) is not None


def role_of(project: Project, user: User) -> str | None:
    if project.owner_id == user.id:
        return "owner"
    member = db.session.get(ProjectMember, (project.id, user.id))
    return member.role if member else ("admin" if user.is_admin else None)


def list(*, user: User) -> list[Project]:  # noqa: A001  (the service vocabulary: get, list, create)
    query = select(Project).order_by(Project.created_at.desc(), Project.id)
    if not user.is_admin:
        query = query.where(_member_clause(user))
    return db.session.scalars(query).all()


def create(*, user: User, name: str, description: str = "", key_field: str = "tag") -> Project:
    project = Project(name=name.strip(), description=description or "", key_field=key_field.strip() or "tag",
                      columns=[], owner_id=user.id)
    db.session.add(project)
    db.session.flush()
    db.session.add(ProjectMember(project_id=project.id, user_id=user.id, role="owner"))
    db.session.commit()
    return project


def summary(project: Project, user: User) -> dict:
    records = db.session.scalar(select(db.func.count()).select_from(Record).where(Record.project_id == project.id))
    return {"project": project, "role": role_of(project, user), "recordCount": records}


# ---- members ------------------------------------------------------------------------------------

def _require_owner(project: Project, user: User) -> None:
    if project.owner_id != user.id and not user.is_admin:
        raise Forbidden("Only the project's owner manages its members")


def list_members(*, project_id: str, user: User) -> list[dict]:
    project = get_or_404(project_id=project_id, user=user)
    rows = db.session.execute(select(ProjectMember, User).join(User, User.id == ProjectMember.user_id)
                              .where(ProjectMember.project_id == project.id)
                              .order_by(ProjectMember.created_at, User.id)).all()
    return [_member_dict(m, u) for m, u in rows]


def add_member(*, project_id: str, user: User, email: str, role: str = "member") -> dict:
    project = get_or_404(project_id=project_id, user=user)
    _require_owner(project, user)
    if role != "member":
        raise ValidationError({"role": "A project has one owner; add members with role 'member'"})
    target = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if target is None:
        raise ValidationError({"email": "No user has this e-mail address"})
    if db.session.get(ProjectMember, (project.id, target.id)) is not None:
        raise Conflict("This user is already a member", {"email": target.email}, code="ALREADY_MEMBER")
    member = ProjectMember(project_id=project.id, user_id=target.id, role="member")
    db.session.add(member)
    db.session.commit()
    return _member_dict(member, target)


def remove_member(*, project_id: str, user: User, member_id: int) -> None:
    project = get_or_404(project_id=project_id, user=user)
    _require_owner(project, user)
    member = db.session.get(ProjectMember, (project.id, int(member_id)))
    if member is None:
        raise NotFound("No such member", code="MEMBER_NOT_FOUND")
    if member.role == "owner":
        raise Conflict("The owner cannot be removed from the project", code="OWNER_REQUIRED")
    db.session.delete(member)
    db.session.commit()


def _member_dict(member: ProjectMember, user: User) -> dict:
    return {"userId": user.id, "email": user.email, "name": user.display_name, "role": member.role,
            "addedAt": member.created_at}


# ---- jobs' visibility -----------------------------------------------------------------------------

def visible_jobs_clause(user: User):
    """Jobs of the user's projects, and project-less jobs the user created; admins see all."""
    if user.is_admin:
        return None
    return or_(Job.project_id.in_(visible_project_ids(user)),
               (Job.project_id.is_(None)) & (Job.created_by == user.id))


def can_see_job(*, job: Job, user: User) -> bool:
    if user.is_admin:
        return True
    if job.project_id is None:
        return job.created_by == user.id
    project = db.session.get(Project, job.project_id)
    return project is not None and can_see(project=project, user=user)


class TooLarge(AppError):
    status, code, message = 413, "PAYLOAD_TOO_LARGE", "The file is larger than the upload limit"
