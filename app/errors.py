"""One way to fail: typed errors with a code, rendered in the envelope of the surface they came to.

Surfaces:
- `/api/v1/…` (workers): the spec's envelope `{"success": false, "error": {code, message, details}, "request_id"}`.
- every other JSON path (`/auth`, `/api`, `/jobs`, `/webhooks`, `/submit-job`, health):
  `{"error": {code, message, details}, "request_id"}`.
- dashboard pages: an HTML page with the message (never a stack trace).
"""
import logging

from flask import current_app, g, jsonify, render_template, request
from psycopg import OperationalError as DriverOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError as DatabaseOperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("conveyor.errors")


class AppError(Exception):
    status = 400
    code = "BAD_REQUEST"
    message = "Bad request"

    def __init__(self, message=None, details=None, *, code=None, status=None, headers=None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details or {}
        self.code = code or self.code
        self.status = status or self.status
        self.headers = headers or {}


class ValidationError(AppError):
    status, code, message = 400, "VALIDATION_ERROR", "Invalid request parameters"

    def __init__(self, field_errors: dict, message=None, **kw):
        super().__init__(message, {"field_errors": field_errors}, **kw)


class InvalidJSON(AppError):
    status, code, message = 400, "INVALID_JSON", "Request body is not valid JSON"


class Unauthorized(AppError):
    status, code, message = 401, "UNAUTHORIZED", "Authentication required"


class Forbidden(AppError):
    status, code, message = 403, "FORBIDDEN", "Not allowed"


class NotFound(AppError):
    status, code, message = 404, "NOT_FOUND", "Not found"


class Conflict(AppError):
    status, code, message = 409, "CONFLICT", "Conflict with the current state"


class PayloadTooLarge(AppError):
    status, code, message = 413, "PAYLOAD_TOO_LARGE", "Request body is too large"


class RateLimited(AppError):
    status, code, message = 429, "RATE_LIMITED", "Too many requests"


class Unavailable(AppError):
    status, code, message = 503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable"


# Our code for an HTTP status that arrives without one of ours: werkzeug's exceptions here, and what
# gunicorn refuses before the app sees it (gunicorn_errors.py).
HTTP_CODES = {
    400: ("BAD_REQUEST", "Bad request"),
    401: ("UNAUTHORIZED", "Authentication required"),
    403: ("FORBIDDEN", "Not allowed"),
    404: ("NOT_FOUND", "No such resource"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed on this resource"),
    413: ("PAYLOAD_TOO_LARGE", "Request body is too large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
    429: ("RATE_LIMITED", "Too many requests"),
    431: ("REQUEST_HEADERS_TOO_LARGE", "Request header fields too large"),
    500: ("INTERNAL_ERROR", "Internal server error"),
    501: ("NOT_IMPLEMENTED", "Not implemented"),
}

JSON_PREFIXES = ("/api/", "/auth/", "/jobs", "/webhooks", "/submit-job", "/healthz", "/readyz", "/openapi.json", "/ws")


def is_worker_api() -> bool:
    return request.path.startswith("/api/v1/") or request.path == "/api/v1"


def wants_json() -> bool:
    if request.path.startswith(JSON_PREFIXES):
        return True
    return request.accept_mimetypes.best == "application/json"


def error_response(err: AppError):
    body = {"code": err.code, "message": err.message, "details": err.details}
    if is_worker_api():
        payload = {"success": False, "error": body, "request_id": g.get("request_id")}
    else:
        payload = {"error": body, "request_id": g.get("request_id")}
    response = jsonify(payload)
    response.status_code = err.status
    for name, value in err.headers.items():
        response.headers[name] = value
    return response


def _from_http(exc: HTTPException) -> AppError:
    code, message = HTTP_CODES.get(exc.code, ("HTTP_ERROR", exc.name))
    details = {}
    if exc.code == 405 and getattr(exc, "valid_methods", None):
        details["allowed_methods"] = sorted(exc.valid_methods)
    if exc.code == 413:
        details["max_bytes"] = request.max_content_length
    headers = {}
    if exc.code == 429:
        # flask-limiter puts the limit on the exception; Retry-After is added by the limiter itself.
        limit = getattr(exc, "limit", None)
        if limit is not None:
            details["limit"] = str(limit.limit)
    if exc.code == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return AppError(message, details, code=code, status=exc.code, headers=headers)


def register_error_handlers(app):
    @app.errorhandler(AppError)
    def handle_app_error(err):
        if wants_json():
            return error_response(err)
        return _html(err)

    @app.errorhandler(HTTPException)
    def handle_http(exc):
        if not wants_json():
            return exc
        return error_response(_from_http(exc))

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def handle_redis_away(exc):
        # What needs Redis and cannot do without it (a live feed) says so, and when to retry; what can
        # do without it (activate, complete, stats, submitting a job) does.
        log.warning("Redis cannot be reached on %s %s: %s", request.method, request.path, exc)
        return handle_app_error(Unavailable("Redis cannot be reached; retry shortly", {"dependency": "redis"},
                                            headers={"Retry-After": "5"}))

    @app.errorhandler(DatabaseOperationalError)
    @app.errorhandler(DriverOperationalError)
    def handle_database_away(exc):
        # The DB-API's OperationalError: the database is down or unreachable, restarted under a
        # connection, or busy past its timeouts (SQLite's write lock). The same request may succeed a
        # moment later: a 503 says so, where a 500 would say "our bug".
        log.warning("the database could not serve %s %s", request.method, request.path, exc_info=exc)
        return handle_app_error(Unavailable("The database cannot serve this request now; retry shortly",
                                            {"dependency": "database"}, headers={"Retry-After": "2"}))

    @app.errorhandler(Exception)
    def handle_unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        err = AppError("Internal server error", code="INTERNAL_ERROR", status=500)
        if wants_json():
            return error_response(err)
        return _html(err)


def _html(err: AppError):
    try:
        return render_template("error.html", error=err), err.status, err.headers
    except Exception:  # the template itself failed: fall back to plain text, never a trace
        current_app.logger.exception("error page failed")
        return f"{err.status} {err.message}", err.status, {"Content-Type": "text/plain; charset=utf-8"}
