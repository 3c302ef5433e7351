"""Redis messages of committed transactions: sent at once, or in the web process by a background sender.

Sending a completion's events cost a Redis round trip on the request's own time (about 5 % of a
completion's CPU). In gunicorn's web workers (`gunicorn.conf.py` turns it on) requests hand their
messages to one sender per process (a greenlet under gevent) that sends whatever has queued in one
pipeline: under load many requests share a round trip, and a channel's messages share one PUBLISH.
Order is kept: one queue, one sender.
Everywhere else (RQ work horses, which end with `os._exit`; CLI commands; tests through the test
client) messages go out before `send` returns, so nothing waits in a queue that may never drain.
Messages still queued when a web worker exits are sent by an `atexit` hook; those that Redis never
gets cost no data: the database holds the truth and readers recover from it.
"""
import atexit
import logging
import queue

from app.extensions import scoped_channel
from app.process_threads import ProcessThreads, take_queued

log = logging.getLogger("conveyor.publisher")


class Publisher:
    def __init__(self):
        self.background = False
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.sender = ProcessThreads(self._run, "redis-publisher")

    def run_in_background(self) -> None:
        """From now on this process sends through its background sender (the web worker's choice)."""
        self.background = True
        atexit.register(self.drain)

    def send(self, client, messages: list[tuple[str, str]]) -> None:
        if not self.background:
            _send(client, messages)
            return
        self.sender.ensure_started()
        self.queue.put((client, messages))

    def drain(self) -> None:
        """Send everything queued now, in this thread."""
        self._send_batch(take_queued(self.queue, []))

    def _run(self) -> None:
        while True:  # wait for one, then take everything that queued while the last pipeline was on the wire
            self._send_batch(take_queued(self.queue, [self.queue.get()]))

    @staticmethod
    def _send_batch(batch) -> None:
        by_client: dict = {}
        for client, messages in batch:  # one client per app; several apps in one process only in tests
            by_client.setdefault(id(client), (client, []))[1].extend(messages)
        for client, messages in by_client.values():
            _send(client, messages)


def _send(client, messages: list[tuple[str, str]]) -> None:
    """One PUBLISH per channel: a channel's messages go out together, one per line (JSON never holds a
    raw newline), in the order they came. Under load a batch carries a few messages per job, and each
    PUBLISH costs the sender, Redis and every subscriber alike."""
    by_channel: dict[str, list[str]] = {}
    for channel, message in messages:
        by_channel.setdefault(channel, []).append(message)
    publishes = [(scoped_channel(client, channel), "\n".join(lines)) for channel, lines in by_channel.items()]
    try:
        if len(publishes) == 1:  # the usual case: no pipeline to build
            client.publish(*publishes[0])
            return
        pipe = client.pipeline(transaction=False)
        for channel, data in publishes:
            pipe.publish(channel, data)
        pipe.execute()
    except Exception:  # the database holds the truth; readers recover missed events from it
        log.exception("publishing %d message(s) failed", len(messages))


def messages_in(data) -> list:
    """The messages one PUBLISH carried (see `_send`), as sent: str or bytes."""
    if data is None:
        return []
    return data.split(b"\n" if isinstance(data, bytes) else "\n")


publisher = Publisher()
