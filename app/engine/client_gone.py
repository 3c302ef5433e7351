"""Has the client of the current request hung up? Lets a long poll drop a worker that went away.

A peer that closed its side (or was reset) makes its socket readable with nothing to read: a
non-blocking `recv(1, MSG_PEEK)` answers b"" or raises a connection error. A readable socket
with bytes waiting (a pipelined request) is alive, and peeking consumes nothing. Only gunicorn
hands the socket to the application (`environ["gunicorn.socket"]`); elsewhere — the Flask test
client, other servers — nothing is known and the client counts as present.
"""
import socket
import sys

from flask import has_request_context, request


def client_socket():
    """The current request's client socket, or None where the server does not expose it."""
    return request.environ.get("gunicorn.socket") if has_request_context() else None


def is_gone(sock) -> bool:
    """True when the peer closed or reset the connection; one syscall, never blocks, reads nothing."""
    try:
        timeout = sock.gettimeout()
        # Timeout 0 rather than MSG_DONTWAIT: a gevent socket with a timeout would wait for data.
        sock.settimeout(0.0)
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        finally:
            sock.settimeout(timeout)
    except BlockingIOError:
        return False  # nothing to read: the client is waiting for its answer
    except ValueError:
        return False  # an SSL socket refuses to peek: we cannot tell
    except OSError:
        return True  # reset, or already closed


def watch(sock, wake):
    """Under gevent, call wake() once when the socket turns readable; returns the function that stops
    watching. Elsewhere (no socket, threads) it does nothing: a waiter notices a hang-up when it wakes."""
    if sock is None or "gevent" not in sys.modules:
        return _nothing
    import gevent
    from gevent.monkey import is_module_patched
    if not is_module_patched("socket"):
        return _nothing
    watcher = gevent.get_hub().loop.io(sock.fileno(), 1)  # 1: readable; costs nothing until it fires

    def fired():
        watcher.stop()  # level-triggered: a readable socket (pipelined bytes) would fire on every loop
        wake()

    watcher.start(fired)
    return watcher.close


def _nothing():
    pass
