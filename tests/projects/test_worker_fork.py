"""Work horses forked while a thread of the worker is inside SQLite could not write, or hung.

SQLite keeps its locks and mutexes in process-wide state that fork copies. A horse forked while the
timeout sweeper held the write lock inherits it as held by a connection it does not have, and its
every write waits out the busy timeout ("database is locked"); one forked while the sweeper held a
SQLite mutex waits on it forever. The worker's threads work inside app/fork_gate.py's gate, and a
fork waits for it."""
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests.support import ROOT

# A thread holds the write lock for 0.3 s; the process forks meanwhile; the child, once the thread
# has committed, writes with a 1 s busy timeout. Prints what the child met.
SCENARIO = textwrap.dedent("""
    import os, sqlite3, sys, threading, time
    from app import fork_gate

    path, gated = sys.argv[1], sys.argv[2] == "gated"
    if gated:
        fork_gate.install()
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (x)")
    holding = threading.Event()

    def sweep():
        with fork_gate.gate.working():
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (1)")
            holding.set()
            time.sleep(0.3)
            conn.execute("COMMIT")

    threading.Thread(target=sweep).start()
    holding.wait()
    pid = os.fork()
    if pid == 0:
        time.sleep(0.5)
        horse = sqlite3.connect(path, isolation_level=None)
        horse.execute("PRAGMA busy_timeout=1000")
        try:
            horse.execute("BEGIN IMMEDIATE")
            horse.execute("INSERT INTO t VALUES (2)")
            horse.execute("COMMIT")
            print("wrote", flush=True)
        except sqlite3.OperationalError as error:
            print(error, flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
""")


@pytest.mark.parametrize("gated, child_meets", [(False, "database is locked"), (True, "wrote")])
def test_a_child_forked_while_a_thread_writes_can_write_only_behind_the_gate(tmp_path, gated, child_meets):
    out = subprocess.run([sys.executable, "-c", SCENARIO, str(tmp_path / "fork.db"), "gated" if gated else "-"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == child_meets, out.stderr


# The worker as worker.py prepares it, its timeout sweeper sweeping without pause (so nearly always inside
# a write transaction), and forks as RQ forks work horses. Each child writes once; one that meets the
# copied write lock is refused, one that meets a copied SQLite mutex hangs (ended by the alarm). A healthy
# child waits for the sweeper between its passes: the busy timeout leaves it many tries.
# Without the gate about 70 of 100 children failed; prints "refused hung".
FORKS = textwrap.dedent("""
    import os, signal, sqlite3, sys, time
    import worker
    from app import create_app
    from app.engine import sweeper

    url, redis_url, forks = sys.argv[1], sys.argv[2], int(sys.argv[3])
    app = create_app(env={"DATABASE_URL": url, "REDIS_URL": redis_url, "JOB_TIMEOUT_SWEEP_SECONDS": "0"})
    with app.app_context():
        worker.ready_to_fork()
        sweeper.start(app)
        time.sleep(0.2)
        refused = hung = 0
        for _ in range(forks):
            pid = os.fork()
            if pid == 0:
                signal.alarm(4)
                horse = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
                horse.execute("PRAGMA busy_timeout=1500")
                try:
                    horse.execute("BEGIN IMMEDIATE")
                    horse.execute("COMMIT")
                    os._exit(0)
                except sqlite3.OperationalError:
                    os._exit(3)
            status = os.waitpid(pid, 0)[1]
            refused += os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3
            hung += os.WIFSIGNALED(status)
        print(refused, hung)
""")


def test_work_horses_forked_while_the_timeout_sweeper_writes_can_write(app, database_url, redis_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's process-wide lock state is the subject")
    out = subprocess.run([sys.executable, "-c", FORKS, database_url, redis_url, "60"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["0", "0"], out.stdout + out.stderr


def test_no_pass_starts_while_a_fork_waits_and_the_fork_goes_on_after_the_pass():
    from app.fork_gate import ForkGate
    gate, order = ForkGate(), []
    inside, leave = threading.Event(), threading.Event()

    def long_pass():
        with gate.working():
            inside.set()
            leave.wait(5)
            order.append("first pass ends")

    def later_pass():
        with gate.working():
            order.append("later pass")

    def fork():
        gate.before_fork()
        order.append("fork")
        gate.after_fork_in_parent()

    threads = [threading.Thread(target=long_pass)]
    threads[0].start()
    inside.wait(5)
    threads.append(threading.Thread(target=fork))
    threads[1].start()
    time.sleep(0.1)  # the fork is waiting for the first pass
    threads.append(threading.Thread(target=later_pass))
    threads[2].start()
    time.sleep(0.1)
    assert order == []
    leave.set()
    for thread in threads:
        thread.join(5)
    assert order == ["first pass ends", "fork", "later pass"]


def test_a_pass_stuck_past_the_limit_does_not_stop_forks_for_good(monkeypatch, caplog):
    from app import fork_gate
    monkeypatch.setattr(fork_gate, "WAIT_LIMIT_S", 0.2)
    gate, inside, leave = fork_gate.ForkGate(), threading.Event(), threading.Event()

    def stuck_pass():
        with gate.working():
            inside.set()
            leave.wait(5)

    stuck = threading.Thread(target=stuck_pass)
    stuck.start()
    inside.wait(5)
    started = time.monotonic()
    gate.before_fork()
    gate.after_fork_in_parent()
    assert 0.2 <= time.monotonic() - started < 2
    assert "fork_gate_timeout" in caplog.text
    leave.set()
    stuck.join(5)
    with gate.working():  # the gate still works
        pass
