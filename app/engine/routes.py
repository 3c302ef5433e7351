"""Worker API routes: thin — authenticate, parse, call the engine service, wrap in the envelope."""
import marshmallow as ma

from app.api.base import envelope, ok
from app.api.v1 import bp
from app.auth.guards import require_key


class JobListQuery(ma.Schema):
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(1, 500))


class JobListSchema(ma.Schema):
    jobs = ma.fields.List(ma.fields.Dict())
    next_cursor = ma.fields.String(allow_none=True)


@bp.get("/jobs")
@require_key("job")
@bp.arguments(JobListQuery, location="query")
@bp.response(200, envelope(JobListSchema))
def list_jobs(args):
    """List jobs of this key's tenant. (The engine arrives with the worker API issue; none exist yet.)"""
    return ok({"jobs": [], "next_cursor": None})
