"""Projects: list and create; a project's records, job statistics, import upload and job buttons."""
from flask import g, redirect, render_template, request, url_for

from app.dashboard import PREFIX, bp, forms
from app.dashboard.guard import signed_in
from app.errors import AppError, ValidationError
from app.projects import content, submit
from app.projects import jobs as project_jobs
from app.projects import service as projects

RECORDS_PER_PAGE = 25
STARTERS = {
    "export": lambda user, pid, form: submit.start_export(user=user, project_id=pid,
                                                          format=forms.parse(forms.ExportForm(), form)["format"]),
    "validation": lambda user, pid, form: submit.start_validation(user=user, project_id=pid),
    "testrun": lambda user, pid, form: submit.start_test_run(user=user, project_id=pid),
}


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.get(f"{PREFIX}/projects")
@signed_in()
def projects_page():
    return _list_page()


def _list_page(status=200, **extra):
    context = {"errors": {}, "form": {}, **extra}
    items = [projects.summary(p, g.user) for p in projects.list(user=g.user)]
    return render_template("projects.html", projects=items, **context), status


@bp.post(f"{PREFIX}/projects")
@signed_in()
def create_project():
    try:
        args = forms.parse(forms.ProjectForm())
        project = projects.create(user=g.user, name=args["name"], description=args["description"],
                                  key_field=args["key_field"])
    except AppError as err:
        return _list_page(err.status, error=err.message, errors=err.details.get("field_errors", {}),
                          form=request.form)
    return redirect(url_for("dashboard.project", project_id=project.id), code=303)


@bp.get(f"{PREFIX}/projects/<project_id>")
@signed_in()
def project(project_id):
    summary = projects.summary(projects.get_or_404(project_id=project_id, user=g.user), g.user)
    after = request.args.get("after") or None
    records = content.list_records(project_id=project_id, user=g.user, limit=RECORDS_PER_PAGE, after=after)
    columns = []
    for record in records["records"]:
        columns.extend(k for k in record.data if k not in columns and k != records["keyField"])
    return render_template(
        "project.html", summary=summary, project=summary["project"], records=records, columns=columns[:8],
        after=after, stats=project_jobs.stats(project_id=project_id, user=g.user),
        recent=project_jobs.list(user=g.user, project_id=project_id, limit=8),
        rules=content.list_rules(project_id=project_id, user=g.user),
        scenarios=content.list_scenarios(project_id=project_id, user=g.user))


@bp.post(f"{PREFIX}/projects/<project_id>/import")
@signed_in()
def start_import(project_id):
    """Multipart upload; answers JSON to the page's script (which shows upload and job progress), else redirects."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError({"file": "Choose a CSV or XLSX file to import"})
    job = submit.start_import(user=g.user, project_id=project_id, filename=upload.filename,
                              content_type=upload.mimetype, data=upload.read(),
                              key_field=request.form.get("key_field"))
    if _wants_json():
        return {"jobId": job.id, "status": job.status, "url": url_for("dashboard.job", job_id=job.id)}, 202
    return redirect(url_for("dashboard.job", job_id=job.id), code=303)


@bp.post(f"{PREFIX}/projects/<project_id>/start/<kind>")
@signed_in()
def start_job(project_id, kind):
    if kind not in STARTERS:
        raise ValidationError({"kind": f"Choose one of {', '.join(STARTERS)}"})
    job = STARTERS[kind](g.user, project_id, request.form)
    return redirect(url_for("dashboard.job", job_id=job.id), code=303)
