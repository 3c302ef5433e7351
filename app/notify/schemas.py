"""Request and response schemas of the notifications API, in the spec's camelCase."""
import marshmallow as ma
from marshmallow import validate

from app.api.base import answer
from app.notify.models import EVENT_TYPES
from app.notify.shapes import STATES

MAX_PAGE_SIZE = 100


class WebhookInSchema(ma.Schema):
    url = ma.fields.String(required=True, validate=validate.Length(1, 2048))
    eventType = ma.fields.String(load_default="all", validate=validate.OneOf(EVENT_TYPES))
    description = ma.fields.String(load_default="", validate=validate.Length(max=500))


class WebhookUpdateSchema(ma.Schema):
    url = ma.fields.String(validate=validate.Length(1, 2048))
    eventType = ma.fields.String(validate=validate.OneOf(EVENT_TYPES))
    description = ma.fields.String(validate=validate.Length(max=500), allow_none=True)
    active = ma.fields.Boolean()


@answer()
class WebhookSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    url = ma.fields.String(required=True)
    eventType = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    active = ma.fields.Boolean(required=True)
    disabledReason = ma.fields.String(allow_none=True, metadata={"description": "why it was switched off"})
    consecutiveFailures = ma.fields.Integer()
    createdAt = ma.fields.String(required=True)
    updatedAt = ma.fields.String(required=True)


@answer()
class WebhookCreatedSchema(WebhookSchema):
    secret = ma.fields.String(required=True, metadata={
        "description": "`whsec_…` signing secret; shown only in this answer"})


@answer()
class WebhookListSchema(ma.Schema):
    webhooks = ma.fields.List(ma.fields.Nested(WebhookSchema), required=True)


class PageArgsSchema(ma.Schema):
    page = ma.fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    limit = ma.fields.Integer(load_default=10, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


class JobPageArgsSchema(PageArgsSchema):
    status = ma.fields.String(validate=validate.OneOf(STATES))


@answer()
class PaginationSchema(ma.Schema):
    total = ma.fields.Integer()
    page = ma.fields.Integer()
    limit = ma.fields.Integer()
    pages = ma.fields.Integer()


@answer()
class TimestampSchema(ma.Schema):
    created = ma.fields.Integer(allow_none=True)
    started = ma.fields.Integer(allow_none=True)
    finished = ma.fields.Integer(allow_none=True)


@answer()
class JobStatusSummarySchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    state = ma.fields.String(metadata={"description": "waiting | active | completed | failed | delayed"})
    progress = ma.fields.Integer()
    timestamp = ma.fields.Nested(TimestampSchema)


@answer("cancelled")
class JobStatusSchema(JobStatusSummarySchema):
    result = ma.fields.Raw(allow_none=True)
    failedReason = ma.fields.String(allow_none=True)
    cancelled = ma.fields.Boolean(metadata={"description": "present (true) when the job was cancelled"})


@answer()
class JobPageSchema(ma.Schema):
    jobs = ma.fields.List(ma.fields.Nested(JobStatusSummarySchema))
    pagination = ma.fields.Nested(PaginationSchema)


class SubmitJobSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=validate.Length(1, 64))
    data = ma.fields.Dict(load_default=dict)
    webhookUrl = ma.fields.String(validate=validate.Length(1, 2048), allow_none=True)


@answer()
class SubmittedSchema(ma.Schema):
    jobId = ma.fields.String(required=True)


@answer()
class AttemptSchema(ma.Schema):
    attempt = ma.fields.Integer()
    statusCode = ma.fields.Integer(allow_none=True)
    durationMs = ma.fields.Integer()
    error = ma.fields.String(allow_none=True)
    at = ma.fields.String()


@answer()
class DeliverySchema(ma.Schema):
    id = ma.fields.Integer()
    eventId = ma.fields.String()
    webhookId = ma.fields.String(metadata={"description": "the `webhook-id` header: names the event"})
    jobId = ma.fields.String(allow_none=True)
    eventType = ma.fields.String()
    status = ma.fields.String(metadata={"description": "pending | succeeded | failed | superseded | skipped"})
    attempts = ma.fields.Integer()
    nextAttemptAt = ma.fields.String(allow_none=True)
    lastStatusCode = ma.fields.Integer(allow_none=True)
    lastError = ma.fields.String(allow_none=True)
    redeliveryOf = ma.fields.Integer(allow_none=True)
    createdAt = ma.fields.String()
    completedAt = ma.fields.String(allow_none=True)
    log = ma.fields.List(ma.fields.Nested(AttemptSchema))


@answer()
class DeliveryListSchema(ma.Schema):
    deliveries = ma.fields.List(ma.fields.Nested(DeliverySchema))
    pagination = ma.fields.Nested(PaginationSchema)
