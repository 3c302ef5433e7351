"""Notifications API: job polling (`/jobs`), job submission (`/submit-job`) and webhooks (`/webhooks`)."""
from app.api.base import Blueprint

bp = Blueprint("notify", __name__, url_prefix="", description=(
    "Learn of job progress and results by polling, WebSocket (`/ws`) or signed webhooks. "
    "Authenticate with `Authorization: Bearer <JWT>`. Errors: `{\"error\": {code, message, details}, "
    "\"request_id\"}`."))

from app.notify import routes  # noqa: E402,F401  (registers the routes on bp)
