"""What every API blueprint shares: input parsing that fails in our envelope, and the v1 envelope."""
import copy
import json

import marshmallow as ma
from flask import g, request
from flask_smorest import Blueprint as SmorestBlueprint
from webargs import core
from webargs.flaskparser import FlaskParser
from werkzeug.routing import IntegerConverter

from app.errors import InvalidJSON, ValidationError
from app.types import MAX_ROW_ID


def answer(*optional: str):
    """A response schema whose fields are in every answer (null where a field allows it), except the
    `optional` ones: the description marks the others required, so that a client generated from it
    need not guess which keys it can rely on (tests/test_openapi_answers.py holds answers to it).
    The fields are copied before they are marked: a schema that extends a request schema shares its
    field objects, and marking those would make the request's fields required too."""
    def mark(cls):
        unknown = set(optional) - set(cls._declared_fields)
        if unknown:
            raise TypeError(f"{cls.__name__} has no field {sorted(unknown)}")
        for name, field in list(cls._declared_fields.items()):
            field = cls._declared_fields[name] = copy.copy(field)
            field.required = name not in optional
        return cls
    return mark


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
        # Workers in any language forget Content-Type, and `curl -d` labels JSON as a urlencoded form:
        # a body is JSON unless it is a multipart upload (whose fields are read as a form). Reading
        # urlencoded bodies as forms dropped their JSON silently (a completion's variables, a failure's
        # retries); now they parse as JSON or answer INVALID_JSON.
        if req.mimetype == "multipart/form-data":
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


class RowId(IntegerConverter):
    """A row id in a path (`<id:rule_id>`). One larger than the id columns hold (PostgreSQL's `integer`)
    is read as an id no row has, so the route answers its own 404 (`WEBHOOK_NOT_FOUND`, …) where the
    database would have refused the query with a 500 ("Python int too large to convert to SQLite
    INTEGER"). Refusing it in the converter instead would make werkzeug answer 405 for the other
    methods of the same path."""
    MAX = MAX_ROW_ID
    NO_ROW = -1

    def to_python(self, value):
        number = super().to_python(value)
        return number if number <= self.MAX else self.NO_ROW

    @staticmethod
    def openapi(converter) -> dict:
        return {"type": "integer", "minimum": 0, "maximum": RowId.MAX}


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


def _holds_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def refuse_nul_characters():
    """before_request: U+0000 anywhere in the path, the query or a body is refused with a 400.

    PostgreSQL stores no NUL in text or JSONB, so such input used to fail at the database as a 500
    (found by schemathesis: variables with "\\u0000"); SQLite would have stored it, so both refuse it
    alike. Cheap on the hot paths: a substring test, and a JSON body is walked only when its text
    holds the escape. Multipart uploads are files, read by their own code."""
    if "\x00" in request.path:
        raise ValidationError({"_path": "The path may not contain U+0000 (NUL)"})
    if b"%00" in request.query_string or b"\x00" in request.query_string:
        raise ValidationError({"_query": "Query parameters may not contain U+0000 (NUL)"})
    if request.mimetype == "multipart/form-data" or not request.content_length:
        return
    data = request.get_data(cache=True)
    if b"\x00" in data or (b"%00" in data and request.mimetype == "application/x-www-form-urlencoded"):
        raise ValidationError({"_body": "The body may not contain U+0000 (NUL)"})
    if b"\\u0000" in data:  # a JSON escape, or a backslash followed by "u0000" inside a string: look
        try:
            parsed = json.loads(data)
        except ValueError:
            return  # not JSON: its own parser says so
        if _holds_nul(parsed):
            raise ValidationError({"_body": "JSON strings may not contain U+0000 (NUL)"})
