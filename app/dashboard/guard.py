"""Who is looking at a page: the dashboard session, with a redirect to sign in instead of a 401."""
from functools import wraps
from urllib.parse import urlsplit

from flask import g, redirect, request, session, url_for

from sqlalchemy import func, select

from app.auth import tokens
from app.auth.guards import current_user
from app.dbsetup import immediate
from app.errors import NotFound, Unauthorized
from app.extensions import db
from app.notify.events import Event


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: `next=//evil.example` or `https://…` would be an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def signed_in(admin: bool = False):
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            try:
                user = current_user(optional=True)
            except Unauthorized:  # the login was revoked (sign-out elsewhere): sign in again
                user = None
            if user is None:
                target = request.full_path.rstrip("?") if request.method == "GET" else None
                return redirect(url_for("dashboard.login", next=target))
            if admin and not user.is_admin:
                raise NotFound()  # a non-admin does not learn that admin pages exist
            # End the sign-in check's read transaction, keeping the user loaded. On SQLite a transaction
            # that reads, then writes fails at once ("database is locked") if a worker committed in
            # between, so a form's use case takes the write lock when it begins (no-op on PostgreSQL).
            db.session.expunge(user)
            db.session.rollback()
            g.user = user
            if request.method in ("GET", "HEAD"):
                return view(*args, **kwargs)
            with immediate():
                return view(*args, **kwargs)
        return wrapper
    return decorator


def socket_token() -> str:
    """A short-lived access token for this page's WebSocket, bound to the dashboard login."""
    token, _ = tokens.issue("access", g.user.id, session["login_session_id"])
    return token


def latest_event_id(user_id: int) -> int:
    """The newest event of the user when the page is rendered: the socket replays anything after it."""
    return db.session.scalar(select(func.max(Event.id)).where(Event.user_id == user_id)) or 0
