"""The service as a newcomer runs it: `make run`'s launcher, and the Procfile's web process."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.support import ROOT, free_port


def _children_of(pid):
    out = subprocess.run(["ps", "-eo", "pid,ppid,pgid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()[1:] if line.split()[2] == str(pid)]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))  # where gunicorn binds
        except OSError:
            return False
        return True


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does to a command started with `&`


@pytest.mark.slow
@pytest.mark.parametrize("started", ["in a terminal", "in the background"])
def test_make_run_launcher_serves_and_ctrl_c_stops_everything(tmp_path, started):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "PORT")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path}/conveyor.db", WEB_CONCURRENCY="1")
    port = 27555  # the documented default, unless something here already has it
    if not _port_is_free(port):
        port = free_port()
        env["PORT"] = str(port)
    log = open(tmp_path / "run.log", "w+")
    proc = subprocess.Popen([sys.executable, "devserver.py"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_ignore_sigint if started == "in the background" else None)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            log.seek(0)
            pytest.fail("readyz never answered 200:\n" + log.read()[-3000:])
        log.seek(0)
        output = log.read()
        assert "bundled Redis" in output
        assert f"web on http://localhost:{port} " in output  # the address it prints is the one it serves
        key = re.search(r"API key\s+(cvk_\S+)", output).group(1)
        res = requests.post(base + "/api/v1/jobs", data="{", headers={"X-API-Key": key})
        assert res.headers["Content-Type"].startswith("application/json")
        assert requests.get(base + "/api/v1/jobs", headers={"X-API-Key": key}).json()["success"] is True
        assert "swagger-ui" in requests.get(base + "/docs").text
    finally:
        if started == "in a terminal":
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: every process of the group hears it
        else:
            os.kill(proc.pid, signal.SIGINT)  # `kill -INT <pid>`: the launcher alone hears it
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # leave nothing behind for the tests that follow
            raise
    time.sleep(1)
    assert _children_of(proc.pid) == [], "processes left running after Ctrl-C"
    log.seek(0)
    assert "bundled Redis stopped" in log.read()


def test_procfile_web_process_answers_in_every_envelope(live_server, key_headers):
    res = requests.get(live_server + "/api/v1/jobs", headers=key_headers)
    assert res.status_code == 200 and res.json()["success"] is True
    res = requests.get(live_server + "/api/v1/jobs")
    assert res.status_code == 401 and res.json()["error"]["code"] == "UNAUTHORIZED"
    assert requests.get(live_server + "/readyz").json()["status"] == "ready"


def test_procfile_declares_web_worker_and_release():
    procfile = open(os.path.join(ROOT, "Procfile")).read()
    kinds = dict(line.split(":", 1) for line in procfile.strip().splitlines())
    assert "gunicorn" in kinds["web"] and "worker.py" in kinds["worker"] and "db upgrade" in kinds["release"]
    from app.extensions import QUEUES
    served = kinds["worker"].split()[2:] + kinds["webhooks"].split()[2:]
    assert sorted(served) == sorted(QUEUES), "every queue needs a process"


_FORK_WHILE_A_THREAD_CONFIGURES = """
import os, signal, sys, threading
import worker
from sqlalchemy import select
from sqlalchemy.orm.mapper import _CONFIGURE_MUTEX
from app import create_app
from app.auth.models import ApiKey
from app.extensions import db

app = create_app(env={"DATABASE_URL": sys.argv[1], "REDIS_URL": sys.argv[2], "LOG_LEVEL": "WARNING"})
with app.app_context():
    db.create_all()
    assert db.Model.registry._new_mappers, "the premise: nothing has configured the mappers yet"
    worker.ready_to_fork()
    held, release = threading.Event(), threading.Event()

    def configuring():  # a thread caught inside SQLAlchemy's configuration at the moment of the fork
        with _CONFIGURE_MUTEX:
            held.set()
            release.wait()

    threading.Thread(target=configuring, daemon=True).start()
    assert held.wait(10)
    child = os.fork()
    if child == 0:  # a work horse: its first query
        signal.alarm(10)
        db.session.execute(select(ApiKey.id)).all()
        os._exit(0)
    _, status = os.waitpid(child, 0)
    release.set()
    print("child", "queried" if os.waitstatus_to_exitcode(status) == 0 else "hung")
"""


def test_a_work_horse_forked_while_a_worker_thread_is_inside_sqlalchemy_can_still_query(tmp_path, redis_url):
    # The worker's threads query from its start; a horse forked while one of them held SQLAlchemy's
    # configuration mutex waited on it forever, holding its job's lock (jobs stuck for minutes).
    out = subprocess.run([sys.executable, "-c", _FORK_WHILE_A_THREAD_CONFIGURES, f"sqlite:///{tmp_path}/fork.db",
                          redis_url], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "child queried", out.stdout + out.stderr


_GREENLETS_WRITING_TO_SQLITE = """
from gevent import monkey
monkey.patch_all()
import sys, time
import gevent
from sqlalchemy import text
from app import create_app, dbsetup
from app.extensions import db

dbsetup.BUSY_TIMEOUT_S = 3  # a frozen process shows in seconds, not in half a minute
app = create_app(env={"DATABASE_URL": sys.argv[1], "REDIS_URL": sys.argv[2], "LOG_LEVEL": "WARNING"})
with app.app_context():
    db.session.execute(text("CREATE TABLE t (n INTEGER)"))
    db.session.commit()


def write(n, pause=0.0):
    with app.app_context(), dbsetup.immediate():
        db.session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
        gevent.sleep(pause)  # mid-transaction, as a request sending to Redis
        db.session.commit()


def timed(n):
    started = time.monotonic()
    try:
        write(n)
        return f"wrote after {time.monotonic() - started:.1f} s"
    except Exception as exc:
        return f"failed after {time.monotonic() - started:.1f} s: {type(exc).__name__}"


holder = gevent.spawn(write, 1, 1.0)
gevent.sleep(0.1)
print("waiting writer", timed(2), "| holder", "committed" if holder.get(timeout=10) is None else "?")
killed = gevent.spawn(write, 3, 60)
gevent.sleep(0.1)
killed.kill()
print("after a killed writer", timed(4))
with app.app_context():
    print("rows", sorted(n for (n,) in db.session.execute(text("SELECT n FROM t"))))
"""


def test_greenlets_take_turns_for_sqlites_write_lock(tmp_path, redis_url):
    # Under gevent, a greenlet waiting inside SQLite's C busy wait froze its process, the greenlet
    # holding the lock with it, until the busy timeout: the web worker stood still for 30-60 s.
    out = subprocess.run([sys.executable, "-c", _GREENLETS_WRITING_TO_SQLITE, f"sqlite:///{tmp_path}/green.db",
                          redis_url], cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and len(lines) == 3, out.stdout + out.stderr
    waiting, after_kill, rows = lines
    # The holder sleeps 1 s inside its transaction; the busy timeout is 3 s.
    assert re.fullmatch(r"waiting writer wrote after (0\.[7-9]|1\.\d|2\.[0-4]) s \| holder committed", waiting), waiting
    assert re.fullmatch(r"after a killed writer wrote after (0|1)\.\d s", after_kill), after_kill
    assert rows == "rows [1, 2, 4]", rows
