"""Sign in and sign out: the dashboard's cookie session is a login like any other, revocable."""
from flask import current_app, g, redirect, render_template, request, session, url_for

from app.auth import service
from app.dashboard import PREFIX, bp, forms
from app.dashboard.guard import safe_next, signed_in, socket_token
from app.dbsetup import immediate
from app.errors import AppError
from app.extensions import db, rate_limit


def _login_key():
    from flask_limiter.util import get_remote_address
    return f"dashboard|{get_remote_address()}|{request.form.get('email', '').strip().lower()[:254]}"


@bp.get("/")
def home():
    return redirect(url_for("dashboard.jobs"))


@bp.get(f"{PREFIX}/login")
def login():
    return render_template("login.html", next=safe_next(request.args.get("next")), errors={})


@bp.post(f"{PREFIX}/login")
@rate_limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=_login_key, methods=["POST"])
def login_post():
    target = safe_next(request.form.get("next"))
    try:
        args = forms.parse(forms.LoginForm())
        db.session.rollback()
        with immediate():  # it reads the user, then writes the login: see guard.signed_in
            user, login_session_id = service.start_browser_session(args["email"], args["password"])
    except AppError as err:
        errors = err.details.get("field_errors", {})
        return render_template("login.html", next=target, error=err.message, errors=errors,
                               email=request.form.get("email", "")), err.status
    session.clear()  # a new session id for a new login (no fixation)
    session.update(user_id=user.id, login_session_id=login_session_id)
    session.permanent = True
    return redirect(target or url_for("dashboard.jobs"))


@bp.post(f"{PREFIX}/logout")
def logout():
    if "login_session_id" in session:
        db.session.rollback()
        with immediate():
            service.logout(session["login_session_id"])
    session.clear()
    return redirect(url_for("dashboard.login"))


@bp.post(f"{PREFIX}/socket-token")
@signed_in()
def fresh_socket_token():
    """A new WebSocket token for a page that has been open longer than the token lives."""
    return {"token": socket_token(), "user_id": g.user.id}
