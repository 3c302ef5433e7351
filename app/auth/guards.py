"""Who is calling: API keys on worker routes, user tokens or the dashboard session on user routes."""
from copy import deepcopy
from functools import wraps

from flask import g, request, session

from app import dbsetup
from app.auth import service
from app.extensions import db
from app.errors import Forbidden, NotFound, Unauthorized

KEY_SECURITY = [{"ApiKeyAuth": []}]
USER_SECURITY = [{"BearerAuth": []}, {"SessionCookie": []}]


def _document(wrapper, security, extra_responses):
    # flask-smorest reads `_apidoc`; keep auth in the OpenAPI description without a second decorator.
    doc = deepcopy(getattr(wrapper, "_apidoc", {}))
    manual = doc.setdefault("manual_doc", {})
    manual["security"] = security
    responses = manual.setdefault("responses", {})
    for status, description in extra_responses.items():
        responses.setdefault(str(status), {"description": description})
    wrapper._apidoc = doc
    return wrapper


def current_key():
    raw = request.headers.get("X-API-Key", "").strip()
    if not raw:
        if request.headers.get("Authorization", "").lower().startswith("bearer "):
            raise Unauthorized("Worker routes accept API keys only (X-API-Key header)")
        raise Unauthorized("API key required in the X-API-Key header")
    return service.authenticate_key(raw)


def require_key(*permissions: str):
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            key = current_key()
            missing = [p for p in permissions if not key.allows(p)]
            if missing:
                raise Forbidden("API key lacks the required permission",
                                {"required": list(permissions), "missing": missing})
            g.api_key = key
            dbsetup.end_read(db.session)
            return view(*args, **kwargs)
        return _document(wrapper, KEY_SECURITY, {401: "No, unknown or revoked API key",
                                                 403: "The key lacks the permission"})
    return decorator


def current_user(optional: bool = False):
    """The signed-in user from a Bearer access token, else from the dashboard session."""
    header = request.headers.get("Authorization", "")
    if request.headers.get("X-API-Key") and not header:
        raise Unauthorized("This route accepts user tokens only, not API keys")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization header must be 'Bearer <token>'")
        user, sid = service.user_from_access_token(token.strip())
        g.login_session_id = sid
        return user
    if "user_id" in session and "login_session_id" in session:
        try:
            user, sid = service.user_from_session(session["user_id"], session["login_session_id"])
        except Unauthorized:
            session.clear()
            raise
        g.login_session_id = sid
        return user
    if optional:
        return None
    raise Unauthorized("Sign in required: send 'Authorization: Bearer <access token>'")


def require_user(admin: bool = False):
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if admin and not user.is_admin:
                raise NotFound()  # isolation: a non-admin does not learn admin routes exist
            g.user = user
            dbsetup.end_read(db.session)
            return view(*args, **kwargs)
        return _document(wrapper, USER_SECURITY, {401: "Missing, expired or revoked token"})
    return decorator
