"""Workers (admins): job types with backlog, workers and their last poll, throughput, recent jobs,
process instances, incidents with resolve, and deployed processes with a BPMN upload form."""
import json

from flask import Response, flash, redirect, render_template, request, url_for

from app.dashboard import PREFIX, bp, workers_data
from app.dashboard.guard import signed_in
from app.engine import deploy, incidents, instances
from app.engine.tx import EVENTS_CHANNEL
from app.errors import AppError, ValidationError
from app.extensions import get_redis, scoped_channel
from app.notify.publisher import messages_in

HEARTBEAT_SECONDS = 15


def _tenant() -> str:
    tenant = (request.values.get("tenant") or "default").strip()
    if not tenant or len(tenant) > 100:
        raise ValidationError({"tenant": "A tenant is 1-100 characters"})
    return tenant


def _back(tenant: str):
    return redirect(url_for("dashboard.workers", tenant=tenant), code=303)


@bp.get(f"{PREFIX}/workers")
@signed_in(admin=True)
def workers():
    data = workers_data.overview(tenant=_tenant())
    return render_template("workers.html", chart_json=workers_data.chart_json(data["chart"]), **data)


@bp.post(f"{PREFIX}/workers/processes")
@signed_in(admin=True)
def deploy_process():
    tenant, upload = _tenant(), request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise ValidationError({"file": "Choose a .bpmn file to deploy"})
        process, created = deploy.deploy(tenant=tenant, xml=upload.read())
        flash(f"Deployed “{process.process_id}” version {process.version}." if created else
              f"“{process.process_id}” version {process.version} is already deployed with these contents.", "success")
    except AppError as err:
        fields = err.details.get("field_errors") if isinstance(err.details, dict) else None
        flash(f"Not deployed: {'; '.join(fields.values()) if fields else err.message}", "error")
    return _back(tenant)


@bp.post(f"{PREFIX}/workers/instances")
@signed_in(admin=True)
def start_instance():
    tenant = _tenant()
    try:
        variables = json.loads(request.form.get("variables") or "{}")
        if not isinstance(variables, dict):
            raise ValueError("variables must be a JSON object")
        started = instances.start(tenant=tenant, process_id=request.form.get("process_id", ""), variables=variables)
        flash(f"Started instance {started['process_instance_id']} of “{started['process_id']}”.", "success")
    except ValueError as exc:
        flash(f"Not started: {exc}", "error")
    except AppError as err:
        flash(f"Not started: {err.message}", "error")
    return _back(tenant)


@bp.post(f"{PREFIX}/workers/incidents/<key>/resolve")
@signed_in(admin=True)
def resolve_incident(key):
    tenant = _tenant()
    try:
        incidents.resolve(tenant=tenant, key=key, retries=request.form.get("retries", type=int))
        flash(f"Incident {key} resolved: its job can be activated again.", "success")
    except AppError as err:
        if err.status == 404:
            raise
        flash(f"Not resolved: {err.message}", "error")
    return _back(tenant)


@bp.get(f"{PREFIX}/workers/events")
@signed_in(admin=True)
def worker_events():
    """Server-sent events: the engine's job and instance changes of one tenant, pushed as they commit."""
    tenant = _tenant()
    client = get_redis()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(scoped_channel(client, EVENTS_CHANNEL))

    def stream():
        try:
            yield "retry: 3000\n\n"
            while True:
                message = pubsub.get_message(timeout=HEARTBEAT_SECONDS)
                if message is None:
                    yield ": keep-alive\n\n"
                    continue
                for data in messages_in(message["data"]):
                    try:
                        event = json.loads(data)
                    except ValueError:
                        continue
                    if event.get("tenant") == tenant:
                        yield f"event: engine\ndata: {json.dumps(event)}\n\n"
        finally:
            pubsub.close()

    # No stream_with_context: the stream must not hold a database connection for its whole life.
    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
