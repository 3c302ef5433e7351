"""Extensions, created unbound here and bound in create_app."""

import redis as redis_lib
from flask import current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy.orm import DeclarativeBase

from app.api.error_docs import ErrorEnvelopeSchema

# Every queue the service uses; worker.py listens on all of them, in this order of priority.
QUEUES = ("default", "engine", "import", "export", "validation", "tests", "webhooks")
QUEUE_TIMEOUTS = {"import": 3600, "export": 1800, "validation": 1800, "tests": 1800, "webhooks": 60}


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
sock = Sock()
csrf = CSRFProtect()


class _Api(Api):
    # What flask-smorest registers as its error schema; every error response is then documented in
    # the envelope of its surface (app/api/error_docs.py).
    ERROR_SCHEMA = ErrorEnvelopeSchema


api = _Api()
# auto_check off: flask-limiter's global check costs ~0.8 ms on every request, limited or not, so
# only the routes that carry a limit are checked (see `rate_limit` and `check_rate_limits`).
limiter = Limiter(key_func=get_remote_address, default_limits=[], auto_check=False)


def rate_limit(limit_value, *, key_func=None, methods=None):
    """A flask-limiter limit on one view, checked before the view runs."""
    def decorator(view):
        limited = limiter.limit(limit_value, key_func=key_func, methods=methods)(view)
        limited.conveyor_rate_limited = True
        return limited
    return decorator


def check_rate_limits():
    """before_request: check limits only where a route has one (or /api/v1 when API_RATE_LIMIT is set)."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        return
    if getattr(view, "conveyor_rate_limited", False) or (
            request.blueprint == "v1" and current_app.config["API_RATE_LIMIT"]):
        limiter.check()


def limits_storage_uri(redis_url: str) -> str:
    # `limits` names unix sockets redis+unix://; redis-py calls them unix://.
    return "redis+unix://" + redis_url[len("unix://"):] if redis_url.startswith("unix://") else redis_url


def init_redis(app):
    app.extensions["redis"] = redis_lib.Redis.from_url(app.config["REDIS_URL"], health_check_interval=30)


def scoped_channel(client: redis_lib.Redis, name: str) -> str:
    """Pub/sub ignores database numbers: a deployment (or test run) on Redis database N gets its own channels."""
    number = int(client.connection_pool.connection_kwargs.get("db") or 0)
    return name if number == 0 else f"{name}@{number}"


def get_redis() -> redis_lib.Redis:
    return current_app.extensions["redis"]


def get_queue(name: str, connection=None) -> Queue:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=connection or get_redis(), serializer=JSONSerializer,
                 default_timeout=QUEUE_TIMEOUTS.get(name, 600))
