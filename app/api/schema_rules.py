"""Rules across a schema's fields, in the OpenAPI description too.

apispec describes each field of a marshmallow schema, but a rule over several fields lives in a
`@validates_schema` method it cannot read ("give `timeout`, `retries` or both"). A schema states
such a rule as JSON Schema in `OPENAPI_RULES`, and this plugin (apispec's hook for a schema's
component) adds it beside the fields, so a generated client or a fuzzer knows it too.
"""
from apispec import BasePlugin


class SchemaRulesPlugin(BasePlugin):
    def schema_helper(self, name, definition, **kwargs):
        return getattr(kwargs.get("schema"), "OPENAPI_RULES", None)


def one_of_given(**types: str) -> dict:
    """At least one of these fields (name=JSON type) is present and not null: in OpenAPI 3.0 a type
    without `nullable` excludes null."""
    return {"anyOf": [{"required": [name], "properties": {name: {"type": type_}}} for name, type_ in types.items()]}
