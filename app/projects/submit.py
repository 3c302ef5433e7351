"""The four project job kinds as use cases: check the input against the project, then start_job."""
from app.auth.models import User
from app.errors import ValidationError
from app.projects import content
from app.projects import service as projects
from app.projects.jobs import start_job
from app.projects.models import Job


def start_import(*, user: User, project_id: str, filename: str, content_type: str, data: bytes,
                 key_field: str | None = None) -> Job:
    project = projects.get_or_404(project_id=project_id, user=user)
    if not data:
        raise ValidationError({"file": "The file is empty"})
    params = {"fileName": filename, "keyField": (key_field or "").strip() or project.key_field}
    return start_job(name="Import", user=user, project=project, params=params,
                     upload=(filename or "upload", content_type, data))


def start_export(*, user: User, project_id: str, format: str = "csv") -> Job:  # noqa: A002
    project = projects.get_or_404(project_id=project_id, user=user)
    return start_job(name="Export", user=user, project=project, params={"format": format})


def start_validation(*, user: User, project_id: str) -> Job:
    project = projects.get_or_404(project_id=project_id, user=user)
    return start_job(name="Validation", user=user, project=project)


def start_test_run(*, user: User, project_id: str, scenario_ids: list[int] | None = None) -> Job:
    project = projects.get_or_404(project_id=project_id, user=user)
    if scenario_ids:
        content.check_scenario_ids(project.id, scenario_ids)
    return start_job(name="TestRun", user=user, project=project,
                     params={"scenario_ids": scenario_ids} if scenario_ids else {})
