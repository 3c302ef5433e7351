"""Error answers in the OpenAPI description, as the service really sends them.

flask-smorest documents every error with its own `Error` schema (`code` as an integer, `status`,
`errors`), but no answer of ours has that shape: errors come in the envelope of their surface
(app/errors.py). A client generated from the description would have typed every error wrongly,
and schemathesis flagged each documented error response as violating its schema. This apispec
plugin (apispec's own hook for rewriting operations) gives every 4xx and 5xx response of an
operation its surface's envelope: the worker API's under `/api/v1`, the user APIs' elsewhere.
"""
import http

import marshmallow as ma
from apispec import BasePlugin


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={
        "description": "Stable machine-readable code, e.g. `JOB_NOT_FOUND`, `VALIDATION_ERROR`"})
    message = ma.fields.String(required=True, metadata={"description": "For people; may change"})
    details = ma.fields.Dict(required=True, metadata={
        "description": "What the code needs: `field_errors` (dotted field → message) for "
                       "`VALIDATION_ERROR`, `current_status` and `reason` for `JOB_NOT_COMPLETABLE`, …"})


class ErrorEnvelopeSchema(ma.Schema):
    """The user APIs' error answer."""
    error = ma.fields.Nested(ErrorBodySchema, required=True)
    request_id = ma.fields.String(required=True)


class WorkerErrorEnvelopeSchema(ErrorEnvelopeSchema):
    """The worker API's error answer (the spec's envelope)."""
    success = ma.fields.Boolean(required=True, metadata={"description": "Always false"})


def _description(name: str) -> str:
    """flask-smorest refers to its error responses by status name (`BAD_REQUEST`, `DEFAULT_ERROR`)."""
    if name == "BAD_REQUEST":  # what the argument parser answers
        return ("`INVALID_JSON` (the body is not JSON) or `VALIDATION_ERROR` (`details.field_errors`: dotted "
                "field → message)")
    if name in http.HTTPStatus.__members__:
        return http.HTTPStatus[name].phrase
    return "Any other error, in the same envelope"


class ErrorEnvelopePlugin(BasePlugin):
    def init_spec(self, spec):
        super().init_spec(spec)
        spec.components.schema("ErrorEnvelope", schema=ErrorEnvelopeSchema)
        spec.components.schema("WorkerErrorEnvelope", schema=WorkerErrorEnvelopeSchema)

    def operation_helper(self, path=None, operations=None, **kwargs):
        name = "WorkerErrorEnvelope" if (path or "").startswith("/api/v1") else "ErrorEnvelope"
        content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
        for operation in (operations or {}).values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            for status, response in list(responses.items()):
                if str(status) != "default" and not str(status).startswith(("4", "5")):
                    continue
                if isinstance(response, str):  # a reference to flask-smorest's shared error response
                    responses[status] = {"description": _description(response), "content": content}
                elif "content" not in response:
                    response["content"] = content
