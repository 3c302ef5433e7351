"""Worker API routes for process models, instances and incidents."""
from flask import g, request

from app.api.base import envelope, ok
from app.api.v1 import bp
from app.auth.guards import require_key
from app.engine import deploy, incidents, instances, present
from app.engine import schemas as s
from app.errors import ValidationError

_XML_BODY = {"required": True, "content": {
    "application/xml": {"schema": {"type": "string"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string",
                                                                                 "format": "binary"}}}}}}


def _xml_body() -> bytes:
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ValidationError({"file": "A BPMN file is required in the multipart field 'file'"})
        return upload.read()
    return request.get_data()


def _process(row, **extra) -> dict:
    return {**present.process(row), **extra}


@bp.post("/processes")
@require_key("process")
@bp.doc(requestBody=_XML_BODY)
@bp.response(201, envelope(s.DeployResult), description="A new version (`created: true`)")
@bp.alt_response(200, schema=envelope(s.DeployResult), success=True,
                 description="The same XML was deployed before: its version (`created: false`)")
@bp.alt_response(400, description="`UNSUPPORTED_ELEMENT` (`details.elements` names each), `INVALID_BPMN` "
                                  "(`details.problems`), or `VALIDATION_ERROR` (no file)")
@bp.alt_response(413, description="`PAYLOAD_TOO_LARGE`: the document is over 1 MiB")
@bp.alt_response(409, description="`CONFLICT`: concurrent deployments kept taking the next version; try again")
def deploy_process(*args):
    """Deploy a BPMN model (Camunda Modeler XML, as `application/xml` or a multipart field `file`).

    The same XML again returns the same version (`created: false`); changed XML gets the next
    version. Unsupported elements are refused with 400 `UNSUPPORTED_ELEMENT` naming each one;
    malformed XML, DTDs/entities and oversize documents with `INVALID_BPMN` / `PAYLOAD_TOO_LARGE`."""
    row, created = deploy.deploy(tenant=g.api_key.tenant, xml=_xml_body())
    return ok(_process(row, created=created), 201 if created else 200)


@bp.get("/processes")
@require_key("process")
@bp.response(200, envelope(s.ProcessList))
def list_processes():
    """Every deployed version of every process of this key's tenant."""
    return ok({"processes": [present.process(p) for p in deploy.list_processes(tenant=g.api_key.tenant)]})


@bp.get("/processes/<process_id>")
@require_key("process")
@bp.response(200, envelope(s.ProcessVersions))
@bp.alt_response(404, description="`PROCESS_NOT_FOUND`: no such process in the key's tenant")
def get_process(process_id):
    """The latest version of a process, with all its versions."""
    rows = deploy.get_versions(tenant=g.api_key.tenant, process_id=process_id)
    return ok(_process(rows[0], versions=[present.process(p) for p in rows]))


@bp.post("/process-instances")
@require_key("process")
@bp.arguments(s.StartRequest)
@bp.response(201, envelope(s.InstanceSchema))
@bp.alt_response(404, description="`PROCESS_NOT_FOUND`: no such process (or `version`) in the key's tenant")
def start_instance(args):
    """Start an instance of the latest (or the given) version with variables; its first jobs are created."""
    return ok(instances.start(tenant=g.api_key.tenant, **args), 201)


@bp.get("/process-instances/<instance_id>")
@require_key("process")
@bp.response(200, envelope(s.InstanceSchema))
@bp.alt_response(404, description="`PROCESS_INSTANCE_NOT_FOUND`: no such instance in the key's tenant")
def get_instance(instance_id):
    """State, variables, element instances, jobs and incidents of an instance."""
    return ok(instances.get(tenant=g.api_key.tenant, key=instance_id))


@bp.post("/process-instances/<instance_id>/cancel")
@require_key("process")
@bp.response(200, envelope(s.InstanceSchema))
@bp.alt_response(404, description="`PROCESS_INSTANCE_NOT_FOUND`: no such instance in the key's tenant")
@bp.alt_response(409, description="`PROCESS_INSTANCE_NOT_ACTIVE`: it has completed or was cancelled")
def cancel_instance(instance_id):
    """Cancel an active instance: its open jobs become CANCELLED (completing them answers 409)."""
    return ok(instances.cancel(tenant=g.api_key.tenant, key=instance_id))


@bp.get("/incidents")
@require_key("process")
@bp.arguments(s.IncidentQuery, location="query")
@bp.response(200, envelope(s.IncidentList))
def list_incidents(args):
    """Incidents of this key's tenant, newest first (filter by state and process instance)."""
    rows = incidents.list_incidents(tenant=g.api_key.tenant, **args)
    return ok({"incidents": [present.incident(i) for i in rows]})


@bp.post("/incidents/<incident_key>/resolve")
@require_key("process")
@bp.arguments(s.ResolveRequest)
@bp.response(200, envelope(s.IncidentSchema))
@bp.alt_response(404, description="`INCIDENT_NOT_FOUND`: no such incident in the key's tenant")
@bp.alt_response(409, description="`INCIDENT_NOT_OPEN` (already resolved), or `INCIDENT_NOT_RESOLVABLE` (its "
                                  "gateway still finds no path with the variables as they are)")
def resolve_incident(args, incident_key):
    """Resolve an incident: its job becomes activatable again with `retries` (default 1); a gateway
    incident evaluates the gateway again with the instance's current variables."""
    inc = incidents.resolve(tenant=g.api_key.tenant, key=incident_key, retries=args["retries"])
    return ok(present.incident(inc))
