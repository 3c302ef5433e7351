from flask import current_app, g, request
from flask_limiter.util import get_remote_address

from app.api.base import Blueprint
from app.auth import service
from app.auth.guards import require_user
from app.auth.schemas import LoginSchema, LogoutSchema, RefreshSchema, TokenPairSchema, UserSchema
from app.extensions import rate_limit


def _login_key():
    body = request.get_json(force=True, silent=True)  # the body is read as JSON whatever its Content-Type
    email = body.get("email", "") if isinstance(body, dict) else ""
    return f"{get_remote_address()}|{str(email).strip().lower()[:254]}"


bp = Blueprint("auth", __name__, url_prefix="/auth", description="Sign in and manage JWT tokens. "
               "Errors: `{\"error\": {code, message, details}, \"request_id\"}`.")


@bp.post("/login")
@rate_limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=_login_key)
@bp.arguments(LoginSchema)
@bp.response(200, TokenPairSchema)
@bp.alt_response(401, description="Wrong e-mail or password (`INVALID_CREDENTIALS`)")
@bp.alt_response(429, description="Too many attempts (`RATE_LIMITED`)")
def login(args):
    """Exchange e-mail and password for an access token and a refresh token."""
    return service.login(args["email"], args["password"])


@bp.post("/refresh")
@bp.arguments(RefreshSchema)
@bp.response(200, TokenPairSchema)
@bp.alt_response(401, description="Invalid, expired, revoked or reused refresh token; reuse revokes the login")
def refresh(args):
    """Rotate: a refresh token is single-use and returns a new pair."""
    return service.refresh(args["refresh_token"])


@bp.post("/logout")
@require_user()
@bp.arguments(LogoutSchema)
@bp.response(204)
def logout(args):
    """Revoke this login: its access and refresh tokens stop working at once."""
    service.logout(g.login_session_id)


@bp.get("/me")
@require_user()
@bp.response(200, UserSchema)
def me():
    """The signed-in user."""
    return g.user
