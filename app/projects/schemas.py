"""Input and output shapes of the projects API; jobs use the spec's camelCase fields."""
import marshmallow as ma
from marshmallow import fields, validate

from app import clock
from app.api.base import answer
from app.projects.models import STATUSES


class UTCTime(fields.DateTime):
    """ISO 8601 in UTC with milliseconds and Z, like every other time the service shows."""

    def _serialize(self, value, attr, obj, **kwargs):
        return clock.iso(value)


class ProjectCreateSchema(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(1, 200))
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    key_field = fields.String(data_key="keyField", load_default="tag", validate=validate.Length(1, 200))


@answer()
class ProjectSchema(ma.Schema):
    id = fields.String(attribute="project.id")
    name = fields.String(attribute="project.name")
    description = fields.String(attribute="project.description")
    keyField = fields.String(attribute="project.key_field")
    ownerId = fields.Integer(attribute="project.owner_id")
    createdAt = UTCTime(attribute="project.created_at")
    role = fields.String(allow_none=True, metadata={"description": "owner, member, or admin (seen as admin)"})
    recordCount = fields.Integer()


class MemberCreateSchema(ma.Schema):
    email = fields.Email(required=True)
    role = fields.String(load_default="member", validate=validate.OneOf(["member"]))


@answer()
class MemberSchema(ma.Schema):
    userId = fields.Integer()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    addedAt = UTCTime()


class RecordsQuery(ma.Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    after = fields.String(load_default=None, metadata={"description": "the last key of the previous page"})


@answer()
class RecordSchema(ma.Schema):
    key = fields.String()
    data = fields.Dict()
    createdAt = UTCTime(attribute="created_at")
    updatedAt = UTCTime(attribute="updated_at")


@answer()
class RecordPageSchema(ma.Schema):
    records = fields.List(fields.Nested(RecordSchema))
    total = fields.Integer()
    keyField = fields.String()
    nextAfter = fields.String(allow_none=True, metadata={"description": "pass as `after` for the next page"})


class RuleInSchema(ma.Schema):
    name = fields.String(load_default=None, allow_none=True)
    kind = fields.String(required=True, metadata={"enum": ["required", "pattern", "range", "allowed", "unique"]})
    field = fields.String(required=True)
    params = fields.Dict(load_default=dict)


@answer()
class RuleSchema(RuleInSchema):
    id = fields.Integer()


class ScenarioInSchema(ma.Schema):
    name = fields.String(required=True)
    assertions = fields.List(fields.Dict(), required=True, metadata={
        "description": "each {kind: count|all_have|none_have|all_match|exists, where?, expect?: pass|fail, …}"})


@answer()
class ScenarioSchema(ScenarioInSchema):
    id = fields.Integer()


class ImportFormSchema(ma.Schema):
    keyField = fields.String(load_default=None, validate=validate.Length(1, 200),
                             metadata={"description": "the column that identifies a record (default: the project's)"})


class ImportFileSchema(ma.Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class ExportSchema(ma.Schema):
    format = fields.String(load_default="csv", validate=validate.OneOf(["csv", "xlsx"]))


class TestRunSchema(ma.Schema):
    scenario_ids = fields.List(fields.Integer(), load_default=None)


class ProjectJobsQuery(ma.Schema):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))
    limit = fields.Integer(load_default=1000, validate=validate.Range(1, 5000))


@answer()
class ProjectJobSchema(ma.Schema):
    id = fields.String()
    type = fields.String()
    projectId = fields.String(allow_none=True)
    projectName = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": list(STATUSES)})
    progress = fields.Integer()
    result = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    createdAt = fields.String()
    startedAt = fields.String(allow_none=True)
    completedAt = fields.String(allow_none=True)
    createdBy = fields.String(allow_none=True)
    createdByName = fields.String(allow_none=True)


@answer()
class ProjectJobStatsSchema(ma.Schema):
    total = fields.Integer()
    queued = fields.Integer()
    running = fields.Integer()
    completed = fields.Integer()
    failed = fields.Integer()
    cancelled = fields.Integer()
