"""Failures that happen before a dashboard view runs, shown as pages rather than bare HTTP errors."""
from flask import render_template, request
from flask_wtf.csrf import CSRFError

from app.dashboard import bp
from app.errors import AppError


@bp.errorhandler(CSRFError)
def form_expired(exc):
    err = AppError("This form has expired or did not come from this site. Reload the page and try again.",
                   code="CSRF_FAILED", status=400)
    return render_template("error.html", error=err), 400


@bp.errorhandler(429)
def too_many(exc):
    if request.endpoint == "dashboard.login_post":
        return render_template("login.html", next=None, errors={}, email=request.form.get("email", ""),
                               error="Too many sign-in attempts. Wait a minute, then try again."), 429
    return render_template("error.html", error=AppError("Too many requests: wait a moment.", status=429)), 429
