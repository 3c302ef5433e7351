"""What every API blueprint shares: input parsing that fails in our envelope, and the v1 envelope."""
import json

import marshmallow as ma
from flask import g, request
from flask_smorest import Blueprint as SmorestBlueprint
from webargs import core
from webargs.flaskparser import FlaskParser

from app.errors import InvalidJSON, ValidationError


def flatten_messages(messages, prefix="") -> dict[str, str]:
    """webargs/marshmallow nest lists of messages; the spec wants one message per dotted field."""
    out = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key in ("json", "query", "form", "files", "headers", "view_args") and not prefix:
                out.update(flatten_messages(value, ""))
                continue
            name = "_body" if key == "_schema" else f"{prefix}{key}"
            out.update(flatten_messages(value, name + "."))
    elif isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
        out[prefix.rstrip(".") or "_body"] = messages[0]
    elif isinstance(messages, list):
        for i, item in enumerate(messages):
            out.update(flatten_messages(item, f"{prefix}{i}."))
    else:
        out[prefix.rstrip(".") or "_body"] = str(messages)
    return out


class ApiParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req):
        # Workers in any language forget Content-Type: a body is JSON unless it is a form upload.
        if req.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded") and req.form:
            return core.missing
        data = req.get_data(cache=True)
        if not data.strip():
            return core.missing
        return json.loads(data.decode("utf-8"))

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        raise InvalidJSON(details={"reason": str(error)})

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        raise ValidationError(flatten_messages(error.messages))


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = ApiParser()

    def arguments(self, schema, *args, **kwargs):
        # webargs builds a new schema from a class on every request (a tenth of a completion's
        # parsing); our argument schemas hold no state, so one instance per route serves them all.
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)


def ok(data, status: int = 200):
    """The v1 success envelope."""
    return {"success": True, "data": data, "request_id": g.get("request_id")}, status


_ENVELOPES: dict = {}


def envelope(data_schema) -> type:
    """An envelope schema around `data_schema`, for the OpenAPI description of v1 responses."""
    cls = data_schema if isinstance(data_schema, type) else type(data_schema)
    if cls not in _ENVELOPES:
        _ENVELOPES[cls] = type(f"{cls.__name__.removesuffix('Schema')}Envelope", (ma.Schema,), {
            "success": ma.fields.Boolean(required=True),
            "data": ma.fields.Nested(data_schema, required=True),
            "request_id": ma.fields.String(required=True),
        })
    return _ENVELOPES[cls]


def json_body_cap():
    """JSON bodies have a small cap; multipart uploads keep the larger MAX_CONTENT_LENGTH."""
    from flask import current_app
    if request.mimetype != "multipart/form-data":
        request.max_content_length = current_app.config["JSON_MAX_BYTES"]
