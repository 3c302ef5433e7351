"""Template helpers: times, statuses and paging links."""
from datetime import datetime

from flask import g, request, url_for

from app import clock
from app.dashboard import bp

STATUS_CLASSES = {"queued": "queued", "waiting": "queued", "created": "queued", "activatable": "queued",
                  "running": "running", "active": "running", "activated": "running",
                  "completed": "completed", "finished": "completed",
                  "failed": "failed", "error_thrown": "failed", "incident": "failed",
                  "cancelled": "cancelled", "canceled": "cancelled", "terminated": "cancelled"}


@bp.app_template_filter("when")
def when(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value.replace("T", " ").rstrip("Z")[:19]
    return clock.iso(value).replace("T", " ")[:19]


@bp.app_template_filter("isotime")
def isotime(value) -> str:
    if isinstance(value, datetime):
        return clock.iso(value)
    return value or ""


@bp.app_template_filter("status_class")
def status_class(status) -> str:
    return STATUS_CLASSES.get(str(status or "").lower().replace(" ", "_"), "queued")


@bp.app_template_global()
def page_url(**changes) -> str:
    """The current page's URL with some query arguments changed (filters keep, page resets)."""
    args = request.args.to_dict()
    args.update({k: v for k, v in changes.items() if v is not None})
    for key in [k for k, v in changes.items() if v is None]:
        args.pop(key, None)
    return url_for(request.endpoint, **(request.view_args or {}), **args)


@bp.app_context_processor
def page_context():
    return {"user": g.get("user")}


@bp.app_template_global("socket_token")
def _socket_token() -> str:
    from app.dashboard.guard import socket_token
    return socket_token()


@bp.app_template_global("latest_event_id")
def _latest_event_id() -> int:
    from app.dashboard.guard import latest_event_id
    return latest_event_id(g.user.id)
