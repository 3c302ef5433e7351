"""Jobs: every job the user may see, live; one job's timeline, result and download; cancel and retry."""
import io

from flask import flash, g, redirect, render_template, request, send_file, url_for

from app.dashboard import PREFIX, bp, forms, jobs_query
from app.dashboard.guard import safe_next, signed_in
from app.errors import ValidationError
from app.projects import jobs as project_jobs
from app.projects import registry
from app.projects import service as projects
from app.projects.models import STATUSES

VERBS = {"cancel": ("cancelled", "could not be cancelled"), "retry": ("queued again", "could not be retried")}


def _back(default_endpoint="dashboard.jobs", **values):
    return redirect(safe_next(request.form.get("next")) or url_for(default_endpoint, **values))


@bp.get(f"{PREFIX}/jobs")
@signed_in()
def jobs():
    flt = jobs_query.JobFilter.from_args(request.args)
    number = max(1, request.args.get("page", 1, type=int))
    listing = jobs_query.page(user=g.user, flt=flt, number=number)
    return render_template("jobs.html", flt=flt, statuses=STATUSES, types=registry.names(),
                           counts=jobs_query.counts(user=g.user, flt=flt), projects=projects.list(user=g.user),
                           **listing)


@bp.get(f"{PREFIX}/jobs/<job_id>")
@signed_in()
def job(job_id):
    item = project_jobs.get_or_404(job_id=job_id, user=g.user)
    project = projects.get_or_404(project_id=item.project_id, user=g.user) if item.project_id else None
    return render_template("job.html", job=item, project=project, spec=project_jobs.to_spec_dict(item))


@bp.get(f"{PREFIX}/jobs/<job_id>/download")
@signed_in()
def download(job_id):
    file = project_jobs.output_file(job_id=job_id, user=g.user)
    return send_file(io.BytesIO(file.content), mimetype=file.content_type, as_attachment=True,
                     download_name=file.name)


@bp.post(f"{PREFIX}/jobs/<job_id>/cancel")
@signed_in()
def cancel(job_id):
    item = project_jobs.cancel(job_id=job_id, user=g.user, wait_seconds=1.0)
    flash(f"{item.type} job {'cancelled' if item.status == 'Cancelled' else 'is being cancelled'}.", "success")
    return _back("dashboard.job", job_id=job_id)


@bp.post(f"{PREFIX}/jobs/<job_id>/retry")
@signed_in()
def retry(job_id):
    item = project_jobs.retry(job_id=job_id, user=g.user)
    flash(f"{item.type} job queued again.", "success")
    return _back("dashboard.job", job_id=job_id)


@bp.post(f"{PREFIX}/jobs/bulk")
@signed_in()
def bulk():
    action = request.form.get("action", "")
    if action not in VERBS:
        raise ValidationError({"action": "Choose cancel or retry"})
    flt = jobs_query.JobFilter.from_args(request.form)
    ids = None if request.form.get("scope") == "filter" else forms.checked_ids()
    if ids == []:
        flash("Select some jobs first, or use the “all matching” button.", "error")
        return redirect(url_for("dashboard.jobs", **flt.as_args()))
    outcome = jobs_query.bulk(user=g.user, action=action, ids=ids, flt=flt)
    did, did_not = VERBS[action]
    message = f"{outcome['done']} job(s) {did}."
    if outcome["skipped"]:
        message += f" {outcome['skipped']} {did_not} (not in a state that allows it)."
    flash(message, "success" if outcome["done"] else "info")
    return redirect(url_for("dashboard.jobs", **flt.as_args()))
