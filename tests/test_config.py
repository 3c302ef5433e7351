"""Configuration comes from the environment; production refuses unsafe defaults."""
import os
import re
import socket
import subprocess
import sys

import pytest

from app import config
from tests.support import ROOT

STRONG = {"SECRET_KEY": "a" * 40, "TOKEN_SECRET": "b" * 40, "REFRESH_TOKEN_SECRET": "c" * 40,
          "DATABASE_URL": "postgresql://db.internal/conveyor", "CONVEYOR_ENV": "production"}


def test_defaults_are_local_and_documented():
    cfg = config.load(env={})
    assert cfg["PORT"] == 27555 and cfg["NODE_ID"] == "srv1"
    assert cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///") and "/instance/" in cfg["SQLALCHEMY_DATABASE_URI"]
    readme = open(os.path.join(ROOT, "README.md")).read()
    for setting in config.SETTINGS:
        assert f"`{setting.name}`" in readme, f"{setting.name} is not documented in the README"


def test_heroku_style_database_urls_are_accepted():
    cfg = config.load(env={"DATABASE_URL": "postgres://u:p@h:5432/d"})
    assert cfg["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@h:5432/d"


@pytest.mark.parametrize("change, problem", [
    ({"SECRET_KEY": None}, "SECRET_KEY"),
    ({"TOKEN_SECRET": "short"}, "TOKEN_SECRET"),
    ({"REFRESH_TOKEN_SECRET": "b" * 40}, "must differ"),
    ({"DATABASE_URL": "sqlite:////tmp/conveyor.db"}, "throw-away SQLite"),
])
def test_production_refuses_unsafe_settings(change, problem):
    env = dict(STRONG)
    for key, value in change.items():
        if value is None:
            env.pop(key)
        else:
            env[key] = value
    with pytest.raises(config.ConfigError, match=problem):
        config.load(env=env)


def test_production_with_strong_settings_loads():
    cfg = config.load(env=STRONG)
    assert cfg["PRODUCTION"] and cfg["SESSION_COOKIE_SECURE"] and not cfg["ALLOW_PRIVATE_WEBHOOKS"]


def test_the_service_process_refuses_to_start_on_default_secrets(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith("SECRET") and k != "SECRET_KEY"}
    env.update(CONVEYOR_ENV="production", DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    res = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode != 0
    assert re.search(r"refusing to start in production: SECRET_KEY", res.stderr)


def test_without_redis_url_the_bundled_redis_of_a_running_make_run_is_used(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "BUNDLED_REDIS_FILE", str(tmp_path / "bundled-redis.url"))
    url = f"unix://{tmp_path}/redis.socket"
    (tmp_path / "bundled-redis.url").write_text(url)  # what devserver.py writes while it runs
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "redis.socket"))
        server.listen(1)
        assert config.load(env={})["REDIS_URL"] == url
        assert config.load(env={"REDIS_URL": "redis://cache:6379/1"})["REDIS_URL"] == "redis://cache:6379/1"
    # make run was killed (SIGKILL): the file and the socket stay, but nothing listens on it
    assert os.path.exists(tmp_path / "redis.socket")
    assert config.load(env={})["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    os.remove(tmp_path / "redis.socket")
    assert config.load(env={})["REDIS_URL"] == "redis://127.0.0.1:6379/0"
