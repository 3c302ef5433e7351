"""The worker API (`/api/v1`): API keys only, the spec's envelope on every answer."""
from flask import current_app, request
from werkzeug.routing import BaseConverter

from app.api.base import Blueprint
from app.extensions import limiter


def _key_bucket():
    # Rate-limit per key (its public prefix), falling back to the client address for keyless calls.
    raw = request.headers.get("X-API-Key", "")
    return "key:" + raw[:12] if raw else "ip:" + (request.remote_addr or "")


bp = Blueprint("v1", __name__, url_prefix="/api/v1", description=(
    "Worker API. Authenticate with `X-API-Key`. Every answer is an envelope: "
    "`{\"success\": true, \"data\": …, \"request_id\"}` or "
    "`{\"success\": false, \"error\": {code, message, details}, \"request_id\"}`."))


class JobKey(BaseConverter):
    """A job key in a path (`<job:job_key>`): any segment but the names of the routes beside it, so that a
    wrong method on `/jobs/activate` or `/jobs/stats` answers 405 with their own `Allow`, not 404
    `JOB_NOT_FOUND` for a job called "stats"."""
    regex = r"(?!(?:activate|stats)$)[^/]+"


@bp.record_once
def _job_key_converter(state):  # recorded before the routes below, so it is there when they are added
    state.app.url_map.converters["job"] = JobKey


# Off by default (empty API_RATE_LIMIT): the worker hot path then pays nothing for limiting.
limiter.limit(lambda: current_app.config["API_RATE_LIMIT"] or "1000000/second", key_func=_key_bucket)(bp)

# Routes live in the modules of their domain and register on `bp`.
from app.engine import routes as _engine_routes  # noqa: E402,F401
