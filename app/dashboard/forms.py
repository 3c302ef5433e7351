"""Form input for the pages, parsed with marshmallow like the JSON APIs; errors go back into the page."""
import marshmallow as ma
from flask import request

from app.errors import ValidationError


def parse(schema: ma.Schema, data=None) -> dict:
    source = request.form if data is None else data
    try:
        return schema.load({k: v for k, v in source.items() if k != "csrf_token"}, unknown=ma.EXCLUDE)
    except ma.ValidationError as err:
        raise ValidationError({k: (v[0] if isinstance(v, list) else str(v)) for k, v in err.messages.items()},
                              "Please correct the highlighted fields") from None


def checked_ids(name: str = "ids") -> list[str]:
    return [v for v in request.form.getlist(name) if v]


class LoginForm(ma.Schema):
    email = ma.fields.String(required=True, validate=ma.validate.Length(1, 254, error="Enter your e-mail address"),
                             error_messages={"required": "Enter your e-mail address"})
    password = ma.fields.String(required=True, validate=ma.validate.Length(1, 1024, error="Enter your password"),
                                error_messages={"required": "Enter your password"})


class KeyForm(ma.Schema):
    name = ma.fields.String(required=True,
                            validate=ma.validate.Length(1, 100, error="Give the key a name (1–100 characters)"),
                            error_messages={"required": "Give the key a name"})
    tenant = ma.fields.String(load_default="default", validate=ma.validate.Length(1, 100))
    permissions = ma.fields.List(ma.fields.String(), load_default=list)

    @ma.pre_load
    def _checkbox_list(self, data, **kwargs):
        data = dict(data)
        data["permissions"] = request.form.getlist("permissions")
        data["tenant"] = (data.get("tenant") or "").strip() or "default"
        return data


class ProjectForm(ma.Schema):
    name = ma.fields.String(required=True,
                            validate=ma.validate.Length(1, 200, error="Give the project a name (1–200 characters)"),
                            error_messages={"required": "Give the project a name"})
    description = ma.fields.String(load_default="", validate=ma.validate.Length(0, 2000))
    key_field = ma.fields.String(load_default="tag", validate=ma.validate.Length(0, 200))


class JsonText(ma.fields.Field):
    """A textarea holding JSON (rule parameters, scenario assertions)."""

    def _deserialize(self, value, attr, data, **kwargs):
        import json
        text = (value or "").strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ma.ValidationError(f"Not valid JSON: {exc}") from None


class RuleForm(ma.Schema):
    name = ma.fields.String(load_default="")
    kind = ma.fields.String(required=True, error_messages={"required": "Choose a kind of rule"})
    field = ma.fields.String(required=True, error_messages={"required": "Name the field the rule checks"})
    params = JsonText(load_default=dict)


class ScenarioForm(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 200, error="Give the scenario a name"),
                            error_messages={"required": "Give the scenario a name"})
    assertions = JsonText(required=True, error_messages={"required": "Add at least one assertion"})


class ExportForm(ma.Schema):
    format = ma.fields.String(load_default="csv", validate=ma.validate.OneOf(("csv", "xlsx")))


class WebhookForm(ma.Schema):
    url = ma.fields.String(required=True, validate=ma.validate.Length(1, 2048, error="Enter the URL to call"),
                           error_messages={"required": "Enter the URL to call"})
    eventType = ma.fields.String(load_default="all", validate=ma.validate.OneOf(
        ("progress", "completed", "failed", "all"), error="Choose which events to send"))
    description = ma.fields.String(load_default="", validate=ma.validate.Length(0, 500))
