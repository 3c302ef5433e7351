"""Project jobs API routes: start imports, exports, validations and test runs; read, cancel, retry, download."""
from flask import Response, g

from app.api.projects import bp
from app.auth.guards import require_user
from app.projects import jobs, submit
from app.projects.schemas import (ExportSchema, ImportFileSchema, ImportFormSchema, ProjectJobSchema, ProjectJobsQuery,
                                  ProjectJobStatsSchema, TestRunSchema)

_CONFLICT = "Not allowed in the job's current status (`JOB_STATE_CONFLICT`, `details.status`)"


@bp.post("/projects/<project_id>/imports")
@require_user()
@bp.arguments(ImportFormSchema, location="form")
@bp.arguments(ImportFileSchema, location="files")
@bp.response(202, ProjectJobSchema)
@bp.alt_response(413, description="The file is over `UPLOAD_MAX_BYTES` (`PAYLOAD_TOO_LARGE`)")
def start_import(form, files, project_id):
    """Import a CSV or XLSX file (multipart field `file`): records are created or updated by key.

    The job's result: `recordsProcessed`, `recordsCreated`, `recordsUpdated`, `recordsUnchanged`, `errors`
    and `errorDetails` (`line`, `field`, `message` of the first rows in error). A failed or cancelled
    import changes no record."""
    upload = files["file"]
    job = submit.start_import(user=g.user, project_id=project_id, filename=upload.filename,
                              content_type=upload.mimetype, data=upload.read(), key_field=form["keyField"])
    return jobs.to_spec_dict(job)


@bp.post("/projects/<project_id>/exports")
@require_user()
@bp.arguments(ExportSchema, required=False)  # a body is optional: every field has a default
@bp.response(202, ProjectJobSchema)
def start_export(args, project_id):
    """Export every record to CSV or XLSX; download it from `GET /api/jobs/{id}/download` when Completed."""
    return jobs.to_spec_dict(submit.start_export(user=g.user, project_id=project_id, format=args["format"]))


@bp.post("/projects/<project_id>/validations")
@require_user()
@bp.response(202, ProjectJobSchema)
def start_validation(project_id):
    """Check every record against the project's rules; the result counts violations per rule and lists findings."""
    return jobs.to_spec_dict(submit.start_validation(user=g.user, project_id=project_id))


@bp.post("/projects/<project_id>/test-runs")
@require_user()
@bp.arguments(TestRunSchema, required=False)  # no body: run every scenario
@bp.response(202, ProjectJobSchema)
def start_test_run(args, project_id):
    """Run the project's scenarios (all, or `scenario_ids`); the result is pass/fail per scenario and assertion."""
    job = submit.start_test_run(user=g.user, project_id=project_id, scenario_ids=args["scenario_ids"])
    return jobs.to_spec_dict(job)


@bp.get("/jobs")
@require_user()
@bp.arguments(ProjectJobsQuery, location="query")
@bp.response(200, ProjectJobSchema(many=True))
def list_jobs(args):
    """Jobs the caller may see (their projects' jobs, admins all), newest first, optionally by `status`."""
    return [jobs.to_spec_dict(j) for j in jobs.list(user=g.user, status=args["status"], limit=args["limit"])]


@bp.get("/jobs/<job_id>")
@require_user()
@bp.response(200, ProjectJobSchema)
def get_job(job_id):
    """One job, with its result or error."""
    return jobs.to_spec_dict(jobs.get_or_404(job_id=job_id, user=g.user))


@bp.get("/jobs/projects/<project_id>")
@require_user()
@bp.arguments(ProjectJobsQuery, location="query")
@bp.response(200, ProjectJobSchema(many=True))
def list_project_jobs(args, project_id):
    """A project's jobs, newest first."""
    found = jobs.list(user=g.user, project_id=project_id, status=args["status"], limit=args["limit"])
    return [jobs.to_spec_dict(j) for j in found]


@bp.get("/jobs/projects/<project_id>/stats")
@require_user()
@bp.response(200, ProjectJobStatsSchema)
def project_job_stats(project_id):
    """How many of a project's jobs are in each status (one indexed GROUP BY)."""
    return jobs.stats(project_id=project_id, user=g.user)


@bp.post("/jobs/<job_id>/cancel")
@require_user()
@bp.response(200, ProjectJobSchema)
@bp.alt_response(409, description=_CONFLICT)
def cancel_job(job_id):
    """Cancel a Queued job (at once) or a Running one (it stops within about two seconds; the answer waits for it)."""
    return jobs.to_spec_dict(jobs.cancel(job_id=job_id, user=g.user))


@bp.post("/jobs/<job_id>/retry")
@require_user()
@bp.response(200, ProjectJobSchema)
@bp.alt_response(409, description=_CONFLICT)
def retry_job(job_id):
    """Reset a Failed or Cancelled job to Queued (progress 0, no error, no start or end time) and run it again."""
    return jobs.to_spec_dict(jobs.retry(job_id=job_id, user=g.user))


@bp.get("/jobs/<job_id>/download")
@require_user()
@bp.doc(responses={"200": {"description": "The exported file", "content": {
    "text/csv": {"schema": {"type": "string", "format": "binary"}},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
        "schema": {"type": "string", "format": "binary"}}}},
    "404": {"description": "No such job, or it has no file yet (`FILE_NOT_FOUND`)"}})
def download(job_id):
    """The file a Completed export job wrote."""
    file = jobs.output_file(job_id=job_id, user=g.user)
    return Response(file.content, content_type=file.content_type,
                    headers={"Content-Disposition": f'attachment; filename="{file.name}"'})
