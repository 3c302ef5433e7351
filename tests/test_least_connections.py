"""New connections go to the web process holding the fewest (least_connections.py), against the real
gunicorn of the Procfile with two workers: who holds which connection is read from /proc."""
import os
import signal
import socket
import time

import pytest

from tests import support

pytestmark = pytest.mark.slow


def _workers(master_pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master_pid:
                        found.append(int(entry))
            except OSError:
                pass
    return sorted(found)


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of the established connections whose local end is `port`."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
                inodes.add(fields[9])
    return inodes


def _split(master_pid: int, port: int) -> dict[int, int]:
    """Established connections on `port` held by each worker."""
    inodes = _established_inodes(port)
    held = {}
    for pid in _workers(master_pid):
        fds = f"/proc/{pid}/fd"
        links = []
        for fd in os.listdir(fds):
            try:
                links.append(os.readlink(f"{fds}/{fd}"))
            except OSError:
                pass
        held[pid] = sum(1 for link in links if link.startswith("socket:[") and link[8:-1] in inodes)
    return held


def _connect(port: int) -> socket.socket:
    """A keep-alive connection that has had one request answered, so its process has accepted it."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
        chunk = conn.recv(4096)
        assert chunk, "connection closed before the answer"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    return conn


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return int(value)
    raise AssertionError(f"no Content-Length in {answer!r}")


def _close_all(conns, master_pid, port):
    for conn in conns:
        conn.close()
    support.wait_until(lambda: sum(_split(master_pid, port).values()) == 0, what="connections closed")


@pytest.fixture(scope="module")
def two_workers(service_env, tmp_path_factory):
    proc, base = support.start_web(service_env, str(tmp_path_factory.mktemp("web") / "web.log"), workers=2)
    master, port = proc.proc.pid, int(base.rsplit(":", 1)[1])

    def both_accepting():  # start_web returns when one answers; the other may still be loading the app
        conns = [_connect(port), _connect(port)]
        held = _split(master, port)
        _close_all(conns, master, port)
        return len(held) == 2 and sorted(held.values()) == [1, 1]

    support.wait_until(both_accepting, seconds=30, interval=0.3, what="both web workers accepting")
    yield master, port, proc
    proc.stop()


def test_connections_opened_one_after_another_are_shared_evenly(two_workers):
    master, port, _ = two_workers
    conns = [_connect(port) for _ in range(8)]
    try:
        assert sorted(_split(master, port).values()) == [4, 4]
    finally:
        _close_all(conns, master, port)


def test_connections_opened_all_at_once_are_shared_evenly(two_workers):
    master, port, _ = two_workers
    conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(8)]
    try:
        for conn in conns:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        for conn in conns:
            assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        assert sorted(_split(master, port).values()) == [4, 4]
    finally:
        _close_all(conns, master, port)


def test_a_stopped_worker_delays_new_connections_only_briefly(two_workers):
    """The process holding more waits for its sibling to accept, but not for long: with the sibling
    frozen it accepts after MAX_DEFER_S (0.25 s), and every connection is served."""
    master, port, _ = two_workers
    frozen = _workers(master)[0]
    os.kill(frozen, signal.SIGSTOP)
    conns, waits = [], []
    try:
        for _ in range(3):
            started = time.monotonic()
            conns.append(_connect(port))
            waits.append(time.monotonic() - started)
    finally:
        os.kill(frozen, signal.SIGCONT)
    try:
        assert _split(master, port)[frozen] == 0
        assert waits[0] < 0.2          # the first: no one held fewer, taken at once
        assert all(0.2 <= w < 2 for w in waits[1:]), waits  # then: deferred, then taken anyway
    finally:
        _close_all(conns, master, port)


def test_a_replaced_worker_takes_the_new_connections(two_workers):
    """A worker that dies gives its seat back; its replacement starts from no connections and takes
    the next ones, while the survivor keeps what it holds."""
    master, port, proc = two_workers
    conns = [_connect(port) for _ in range(4)]
    try:
        victim, survivor = _workers(master)
        survivor_held = _split(master, port)[survivor]
        os.kill(victim, signal.SIGKILL)
        replacement = support.wait_until(lambda: next((p for p in _workers(master) if p not in (victim, survivor)),
                                                      None), what="a replacement worker")
        support.wait_until(lambda: f"[{replacement}] [INFO] Accepting connections" in proc.output(), seconds=30,
                           what="the replacement accepting")
        conns += [_connect(port) for _ in range(survivor_held)]
        held = _split(master, port)
        assert held == {survivor: survivor_held, replacement: survivor_held}, held
    finally:
        _close_all(conns, master, port)
