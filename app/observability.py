"""Request ids and one JSON log line per request."""
import json
import logging
import re
import secrets
import sys
import time

from flask import g, request

from app import clock

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
access_log = logging.getLogger("conveyor.access")


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {"ts": clock.iso(clock.utcnow()), "level": record.levelname.lower(), "logger": record.name}
        if isinstance(record.msg, dict):
            entry.update(record.msg)
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(level)


def new_request_id() -> str:
    return f"req_{int(time.time() * 1000)}{secrets.token_hex(3)}"


def register_request_hooks(app):
    @app.before_request
    def start_request():
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else new_request_id()

    @app.after_request
    def finish_request(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        if request.path != "/healthz" and access_log.isEnabledFor(logging.INFO):
            access_log.info({
                "request_id": g.get("request_id"), "method": request.method, "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
            })
        return response
