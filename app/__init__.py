"""Conveyor: a job server with a worker API, project background jobs and live notifications."""
from flask import Flask

from app import config as config_module
from app.api.base import RowId, json_body_cap, refuse_nul_characters
from app.api.error_docs import ErrorEnvelopePlugin
from app.api.schema_rules import SchemaRulesPlugin
from app.errors import register_error_handlers
from app import dbsetup  # noqa: F401  (SQLite pragmas and BEGIN handling)
from app import green_wait
from app import extensions as ext  # not `api`: importing app.api would rebind that name here
from app.observability import configure_logging, register_request_hooks


def create_app(overrides: dict | None = None, env: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(config_module.load(env, overrides))
    configure_logging(app.config["LOG_LEVEL"])
    green_wait.install()  # gunicorn's gevent workers: psycopg waits on the hub
    register_request_hooks(app)
    dbsetup.register(app)
    register_extensions(app)
    dbsetup.writers_take_turns(app)  # gevent on SQLite: greenlets wait for the write lock on the hub
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    from app import models  # noqa: F401  (every table, for migrations and create_all)

    ext.db.init_app(app)
    ext.migrate.init_app(app, ext.db, directory=app.root_path + "/../migrations", render_as_batch=True,
                         compare_type=True)
    ext.init_redis(app)
    app.before_request(json_body_cap)  # before anything reads a body (the login limit's key does)
    app.before_request(refuse_nul_characters)
    app.config.setdefault("RATELIMIT_STORAGE_URI", ext.limits_storage_uri(app.config["REDIS_URL"]))
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    ext.limiter.init_app(app)
    app.before_request(ext.check_rate_limits)
    ext.sock.init_app(app)
    ext.csrf.init_app(app)
    app.url_map.converters["id"] = RowId  # before any route uses it
    ext.api.init_app(app, spec_kwargs={"info": {"description": _API_DESCRIPTION},
                                       "extra_plugins": [ErrorEnvelopePlugin(), SchemaRulesPlugin()]})
    ext.api.register_converter(RowId, RowId.openapi)
    ext.api.spec.components.security_scheme("ApiKeyAuth", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    ext.api.spec.components.security_scheme("BearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    ext.api.spec.components.security_scheme("SessionCookie", {"type": "apiKey", "in": "cookie", "name": "session"})


def register_blueprints(app: Flask) -> None:
    from app import dashboard
    from app.api import auth, docs, health, notify, projects, v1

    app.register_blueprint(health.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(dashboard.bp)
    for blueprint in (v1.bp, auth.bp, projects.bp, notify.bp):
        ext.csrf.exempt(blueprint)  # token- and key-authenticated APIs; CSRF guards cookie-session forms
        ext.api.register_blueprint(blueprint)


def register_commands(app: Flask) -> None:
    from app.cli import register

    register(app)


_API_DESCRIPTION = """
Conveyor's HTTP API. Three surfaces:

* **Worker API** (`/api/v1`, header `X-API-Key`): the spec's envelope on every answer.
* **User APIs** (`/auth`, `/api`, `/jobs`, `/webhooks`, `/submit-job`; `Authorization: Bearer <JWT>`):
  errors as `{"error": {"code", "message", "details"}, "request_id"}`.
* **WebSocket** `/ws` (see the README).

Every response carries `X-Request-ID`. JSON bodies are capped by `JSON_MAX_BYTES` (default 4 MiB,
413 `PAYLOAD_TOO_LARGE`); file uploads by `UPLOAD_MAX_BYTES` (default 50 MiB).
No text may hold U+0000 (NUL), in the path, the query or a JSON string: PostgreSQL cannot store it,
so it is refused with 400 `VALIDATION_ERROR` on either database.
"""
