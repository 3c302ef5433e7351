"""Request and response schemas of the worker API (the spec's field names and messages)."""
import marshmallow as ma
from marshmallow import fields as f, validate as v

from app.api.base import answer
from app.api.schema_rules import one_of_given

NAME = r"^[A-Za-z0-9_-]{1,100}$"


def _int(low, high, message, strict=True, **kw):
    return f.Integer(strict=strict, validate=v.Range(low, high, error=message),
                     error_messages={"invalid": message, "required": message}, **kw)


class Lenient(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # workers in other languages send extra fields; ignore them


class ActivateRequest(Lenient):
    type = f.String(required=True, validate=v.Regexp(NAME, error="Job type must be 1-100 letters, digits, "
                                                                  "hyphens or underscores"),
                    error_messages={"required": "Job type is required", "null": "Job type is required",
                                    "invalid": "Job type must be a string"})
    worker = f.String(required=True, validate=v.Regexp(NAME, error="Worker ID must be 1-100 letters, digits, "
                                                                    "hyphens or underscores"),
                      error_messages={"required": "Worker ID is required", "null": "Worker ID is required",
                                      "invalid": "Worker ID must be a string"})
    max_jobs = _int(1, 100, "Max jobs must be between 1 and 100", load_default=10)
    timeout = _int(1000, 3_600_000, "Timeout must be between 1000 and 3600000 milliseconds", load_default=300_000)
    fetch_variables = f.List(f.String(), load_default=list,
                             error_messages={"invalid": "Fetch variables must be a list of variable names"})
    request_timeout = _int(0, 3_600_000, "Request timeout must be between 0 and 3600000 milliseconds",
                           load_default=None, allow_none=True,
                           metadata={"description": "Long-poll wait in ms (default: `timeout`); capped by "
                                                    "LONG_POLL_MAX_MS. 0 answers at once."})


@answer()
class ActivatedJob(ma.Schema):
    key = f.String()
    type = f.String()
    process_instance_id = f.String()
    element_id = f.String()
    element_instance_id = f.String()
    worker = f.String()
    retries = f.Integer()
    deadline = f.String()
    variables = f.Dict()
    custom_headers = f.Dict()
    created_at = f.String()
    activated_at = f.String()


@answer()
class ActivateResult(ma.Schema):
    jobs = f.List(f.Nested(ActivatedJob))
    worker = f.String()
    activated_count = f.Integer()
    timeout = f.Integer()


class CompleteRequest(Lenient):
    variables = f.Raw(load_default=None, allow_none=True, metadata={"type": "object"})
    worker = f.String(load_default=None, allow_none=True,
                      metadata={"description": "If given, must be the worker holding the job"})


@answer()
class NextActivity(ma.Schema):
    element_id = f.String()
    element_type = f.String()
    element_name = f.String(allow_none=True)


@answer()
class Continuation(ma.Schema):
    process_instance_id = f.String()
    element_id = f.String()
    token_id = f.String()
    next_activities = f.List(f.Nested(NextActivity))


@answer()
class ExecutionSummary(ma.Schema):
    started_at = f.String()
    total_duration_ms = f.Integer()
    processing_time_ms = f.Integer()
    system_overhead_ms = f.Integer()
    retries_used = f.Integer()


@answer()
class VariablesUpdated(ma.Schema):
    added = f.List(f.String())
    modified = f.List(f.String())
    removed = f.List(f.String())


@answer()
class CompleteResult(ma.Schema):
    job_key = f.String()
    status = f.String()
    completed_at = f.String()
    completed_by = f.String()
    execution_summary = f.Nested(ExecutionSummary)
    process_continuation = f.Nested(Continuation)
    variables_updated = f.Nested(VariablesUpdated)
    result_variables = f.Dict()


class FailRequest(Lenient):
    retries = _int(0, 100, "Retries must be between 0 and 100", load_default=None, allow_none=True,
                   metadata={"description": "Retries left; omitted: one fewer than before"})
    error_message = f.String(load_default=None, allow_none=True,
                             metadata={"description": "Truncated to 4000 characters"})
    error_code = f.String(load_default=None, allow_none=True, validate=v.Length(max=255))
    retry_backoff_ms = _int(0, 3_600_000, "Retry backoff must be between 0 and 3600000 milliseconds",
                            load_default=None, allow_none=True,
                            metadata={"description": "Delay before the next activation; default exponential "
                                                     "2 s × 2^retries used, capped at 60 s"})
    worker = f.String(load_default=None, allow_none=True)


@answer()
class FailResult(ma.Schema):
    job_key = f.String()
    status = f.String()
    retries = f.Integer()
    failed_at = f.String()
    error_message = f.String(allow_none=True)
    error_code = f.String(allow_none=True)
    retry_backoff_ms = f.Integer(allow_none=True)
    next_activation_at = f.String(allow_none=True)
    incident_key = f.String(allow_none=True)


class ThrowErrorRequest(Lenient):
    error_code = f.String(required=True, validate=v.Length(1, 255, error="Error code is required"),
                          error_messages={"required": "Error code is required", "null": "Error code is required"})
    error_message = f.String(load_default=None, allow_none=True)
    variables = f.Raw(load_default=None, allow_none=True, metadata={"type": "object"})
    worker = f.String(load_default=None, allow_none=True)


@answer()
class ThrowErrorResult(ma.Schema):
    job_key = f.String()
    status = f.String()
    error_code = f.String()
    error_message = f.String(allow_none=True)
    caught = f.Boolean()
    boundary_event = f.Dict(allow_none=True)
    incident_key = f.String(allow_none=True)
    variables_updated = f.Nested(VariablesUpdated)
    process_continuation = f.Nested(Continuation)


class UpdateJobRequest(Lenient):
    OPENAPI_RULES = one_of_given(timeout="integer", retries="integer")

    timeout = _int(1000, 3_600_000, "Timeout must be between 1000 and 3600000 milliseconds", load_default=None,
                   allow_none=True, metadata={"description": "New deadline = now + timeout (active jobs)"})
    retries = _int(1, 100, "Retries must be between 1 and 100", load_default=None, allow_none=True)

    @ma.validates_schema
    def one_of(self, data, **kwargs):
        if data.get("timeout") is None and data.get("retries") is None:
            raise ma.ValidationError("Give timeout, retries or both", "_schema")


@answer("completed_at", "failed_at", "cancelled_at", "elapsed_time_ms", "remaining_time_ms", "execution_summary",
        "failure_information", "incident_information")
class JobDetail(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE
    job_key = f.String()
    type = f.String()
    status = f.String()
    created_at = f.String()
    activated_at = f.String(allow_none=True)
    completed_at = f.String(metadata={"description": "Completed jobs only"})
    failed_at = f.String(metadata={"description": "Jobs failed for good or ended by a thrown error only"})
    cancelled_at = f.String(metadata={"description": "Cancelled jobs only"})
    deadline = f.String(allow_none=True)
    timeout_ms = f.Integer(allow_none=True)
    elapsed_time_ms = f.Integer(metadata={"description": "Active jobs only: since activation"})
    remaining_time_ms = f.Integer(metadata={"description": "Active jobs only: until the deadline"})
    process_context = f.Dict()
    worker_assignment = f.Dict(allow_none=True)
    retry_configuration = f.Dict()
    variables = f.Dict()
    custom_headers = f.Dict()
    tenant_id = f.String()
    execution_summary = f.Dict(metadata={"description": "Completed jobs only"})
    execution_history = f.List(f.Dict())
    failure_information = f.Dict(metadata={"description": "Jobs that failed at least once only"})
    incident_information = f.Dict(metadata={"description": "Jobs that failed for good or threw an error only"})
    performance_metrics = f.Dict()


class JobListQuery(Lenient):
    type = f.String()
    status = f.String(metadata={"description": "ACTIVATABLE, ACTIVE, COMPLETED, FAILED, ERROR_THROWN, CANCELLED"})
    worker = f.String()
    process_instance_id = f.String()
    limit = _int(1, 500, "Limit must be between 1 and 500", strict=False, load_default=50)
    cursor = f.String(metadata={"description": "`next_cursor` of the previous page"})


@answer()
class JobList(ma.Schema):
    jobs = f.List(f.Dict())
    next_cursor = f.String(allow_none=True)


@answer()
class Stats(ma.Schema):
    tenant_id = f.String()
    generated_at = f.String()
    window_seconds = f.Integer()
    types = f.List(f.Dict())


@answer()
class ProcessSchema(ma.Schema):
    process_id = f.String()
    version = f.Integer()
    name = f.String(allow_none=True)
    checksum = f.String()
    tenant_id = f.String()
    created_at = f.String()


@answer()
class DeployResult(ProcessSchema):
    created = f.Boolean()


@answer()
class ProcessList(ma.Schema):
    processes = f.List(f.Nested(ProcessSchema))


@answer()
class ProcessVersions(ProcessSchema):
    versions = f.List(f.Nested(ProcessSchema))


class StartRequest(Lenient):
    process_id = f.String(required=True, validate=v.Length(1, 255),
                          error_messages={"required": "Process id is required"})
    version = _int(1, 1_000_000, "Version must be a positive integer", load_default=None, allow_none=True)
    variables = f.Dict(load_default=dict, error_messages={"invalid": "Variables must be a JSON object"})


@answer("next_activities", "element_instances", "jobs", "incidents", "cancelled_jobs")
class InstanceSchema(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE
    process_instance_id = f.String()
    process_id = f.String()
    version = f.Integer()
    state = f.String()
    variables = f.Dict()
    created_at = f.String()
    ended_at = f.String(allow_none=True)
    next_activities = f.List(f.Nested(NextActivity))
    element_instances = f.List(f.Dict())
    jobs = f.List(f.Dict())
    incidents = f.List(f.Dict())
    cancelled_jobs = f.List(f.String())


@answer()
class IncidentSchema(ma.Schema):
    incident_key = f.String()
    type = f.String()
    state = f.String()
    process_instance_id = f.String()
    element_id = f.String()
    element_instance_id = f.String(allow_none=True)
    job_key = f.String(allow_none=True)
    job_type = f.String(allow_none=True)
    error_code = f.String(allow_none=True)
    message = f.String()
    created_at = f.String()
    resolved_at = f.String(allow_none=True)


@answer()
class IncidentList(ma.Schema):
    incidents = f.List(f.Nested(IncidentSchema))


class IncidentQuery(Lenient):
    state = f.String(validate=v.OneOf(["OPEN", "RESOLVED"]))
    process_instance_id = f.String()
    limit = _int(1, 500, "Limit must be between 1 and 500", strict=False, load_default=100)


class ResolveRequest(Lenient):
    retries = _int(1, 100, "Retries must be between 1 and 100", load_default=None, allow_none=True,
                   metadata={"description": "Retries the job gets back (default 1)"})
