"""Daemon threads that a process starts on first use, and again in a forked child (gunicorn's workers
fork from the master; a thread does not survive a fork). Greenlets under gevent's patched `threading`.
Such a thread typically waits for one item of its queue, then takes what else queued (`take_queued`)."""
import os
import queue
import threading


class ProcessThreads:
    def __init__(self, target, name: str, count: int = 1):
        self.target, self.name, self.count = target, name, count
        self.pid = None
        self.lock = threading.Lock()

    def ensure_started(self) -> None:
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid != os.getpid():
                self.pid = os.getpid()
                for n in range(self.count):
                    name = self.name if self.count == 1 else f"{self.name}-{n}"
                    threading.Thread(target=self.target, name=name, daemon=True).start()


def take_queued(pending: queue.SimpleQueue, taken: list, limit: int | None = None) -> list:
    """`taken` plus whatever waits in `pending` now (at most `limit` items in all), without blocking:
    what queued while the last batch was on the wire goes out together."""
    while limit is None or len(taken) < limit:
        try:
            taken.append(pending.get_nowait())
        except queue.Empty:
            break
    return taken
