"""gunicorn's gevent worker, with each new connection going to the web process that holds the fewest
(as Envoy's `exact_balance` connection balancer does).

gunicorn's workers all accept from one listening socket, whoever gets there first. A fleet of job
workers opens a few connections and keeps them (keep-alive, long polls), and a few connections land
unevenly: eight over two processes split 5:3, 6:2 or worse more often than 4:4 (binomially 73 % of
the time), and the process holding most of them caps the whole fleet at one core for as long as
they stay open. Here each web process counts its open connections in a small table of shared
memory, which the master sets up before it forks; a process holding more than another live one
steps back for a millisecond before accepting, so the other takes the connection. If no one else
has taken it after `MAX_DEFER_S` (the other is busy, or stopping), this one accepts it: fairness
never keeps a connection waiting long.

The gunicorn.conf.py hooks `on_starting`, `pre_fork` and `child_exit` seat the workers; without them
the worker is gunicorn's gevent worker, accepting one connection at a time. This module is outside
the `app` package because gunicorn's master imports it, and the master must not import the app
(and with it sockets and ssl) before the workers' gevent monkey-patching.

Written here: gunicorn has no such setting, and it is a few lines over gevent's own server hooks.
"""
import ctypes
import mmap
import os
import time
from functools import partial

from gevent.monkey import get_original
from gevent.server import StreamServer
from gunicorn.workers.ggevent import GeventWorker

SLOTS = 64            # web processes on one host; a worker beyond them is simply not balanced
RECHECK_S = 0.001     # how long a process with more connections steps back before looking again
MAX_DEFER_S = 0.25    # after this, it accepts anyway (a busy process can take 100+ ms to accept)

_select_now = get_original("select", "select")  # a zero-timeout look, from a loop callback (no switch)


class Board:
    """Per seat, the web process's pid (0: free) and how many connections it holds. A seat is written
    only by its process (sitting down, counting, leaving when it stops) and by the master once that
    process has exited; aligned 8-byte words are read whole: no lock is needed."""

    def __init__(self, slots: int = SLOTS):
        word = ctypes.sizeof(ctypes.c_int64)
        self._memory = mmap.mmap(-1, 2 * slots * word)  # anonymous and MAP_SHARED: shared across fork
        self.pids = (ctypes.c_int64 * slots).from_buffer(self._memory)
        self.counts = (ctypes.c_int64 * slots).from_buffer(self._memory, slots * word)

    def free_seat(self, taken: set[int]) -> int | None:
        return next((seat for seat in range(len(self.pids)) if seat not in taken), None)

    def sit(self, seat: int, pid: int) -> None:
        self.counts[seat] = 0
        self.pids[seat] = pid

    def leave(self, seat: int) -> None:
        self.pids[seat] = 0
        self.counts[seat] = 0

    def holds_more(self, seat: int) -> bool:
        """Whether another live process holds fewer connections than this seat's."""
        mine, pids, counts = self.counts[seat], self.pids[:], self.counts[:]
        return any(pid and other != seat and counts[other] < mine for other, pid in enumerate(pids))


# -- gunicorn server hooks (called from gunicorn.conf.py, in the master) --------------------------

def on_starting(server) -> None:
    server.connection_board = Board()


def pre_fork(server, worker) -> None:
    board = getattr(server, "connection_board", None)
    if board is None:
        return
    taken = {w.connection_seat for w in server.WORKERS.values() if getattr(w, "connection_seat", None) is not None}
    worker.connection_board, worker.connection_seat = board, board.free_seat(taken)


def child_exit(server, worker) -> None:
    if getattr(worker, "connection_seat", None) is not None:
        worker.connection_board.leave(worker.connection_seat)


# -- in the web process -----------------------------------------------------------------------------

class BalancedServer(StreamServer):
    max_accept = 1  # one connection per wake-up, as gunicorn sets for several workers

    def __init__(self, board: Board | None, seat: int | None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.board, self.seat = board, seat
        self.deferring_since = None

    def do_read(self):
        if self.seat is not None and self.board.holds_more(self.seat):
            now = time.monotonic()
            if self.deferring_since is None:
                self.deferring_since = now
            if now - self.deferring_since < MAX_DEFER_S:
                self.stop_accepting()
                self._timer = self.loop.timer(RECHECK_S)  # stop_accepting() stops and closes it
                self._timer.start(self._look_again)
                return None  # nothing accepted this time
        self.deferring_since = None
        accepted = super().do_read()
        if accepted and self.seat is not None:
            self.board.counts[self.seat] += 1
        return accepted

    def _look_again(self) -> None:
        if not _select_now([self.socket], [], [], 0)[0]:  # another process took it: the next one starts afresh
            self.deferring_since = None
        self._start_accepting_if_started()

    def close(self):
        """Stopping (gunicorn's graceful shutdown): no longer a place for new connections."""
        if self.seat is not None:
            self.board.leave(self.seat)
            self.seat = None
        super().close()

    def do_close(self, sock, *args):
        super().do_close(sock, *args)
        if self.seat is not None:
            self.board.counts[self.seat] -= 1


class LeastConnectionsWorker(GeventWorker):
    connection_board: Board | None = None
    connection_seat: int | None = None

    def run(self):
        if self.connection_seat is not None:  # only now, with the app loaded, does this process accept
            self.connection_board.sit(self.connection_seat, os.getpid())
            self.log.info("Accepting connections, balanced by least connections (seat %d)", self.connection_seat)
        super().run()

    def server_class(self, listener, *, spawn, application, log, handler_class, environ, **ssl_args):
        """GeventWorker.run() builds each listener's server through this hook when it is set (else a
        plain StreamServer). The WSGI arguments are meant for gevent's pywsgi server and go unused:
        gunicorn's own HTTP handling (`handle`) serves each connection, as in the plain worker."""
        return BalancedServer(self.connection_board, self.connection_seat, listener,
                              handle=partial(self.handle, listener), spawn=spawn, **ssl_args)
