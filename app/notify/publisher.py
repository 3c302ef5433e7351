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

A message nobody subscribes to is dropped by Redis, and building and sending the engine's job
events cost about 6 % of a job's web CPU in the worker API bench. So the background sender notes
each channel whose PUBLISH reached no subscriber, and for `UNHEARD_RECHECK_SECONDS` after that
`heard()` says no: callers whose messages are only live news (the engine's job events) skip
building them. Then the next message goes out and its count decides again. A new subscriber thus
misses at most that long of a process's messages: kept short, it is less than the time between a
page reading the database and its event stream subscribing, a gap every live page has anyway.
Messages that must not be skipped (wake-ups, durable events) never ask.
"""
import atexit
import logging
import queue
import time

from app.extensions import scoped_channel
from app.process_threads import ProcessThreads, take_queued

log = logging.getLogger("conveyor.publisher")

UNHEARD_RECHECK_SECONDS = 0.05


class Publisher:
    def __init__(self):
        self.background = False
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.sender = ProcessThreads(self._run, "redis-publisher")
        self.unheard: dict[str, float] = {}  # channel → until when it counts as unheard (monotonic)
        self.recheck_seconds = UNHEARD_RECHECK_SECONDS

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

    def heard(self, channel: str) -> bool:
        """Would a message on `channel` reach a subscriber? False only in the background sender's
        process, for a while after a PUBLISH on it reached nobody (see the module's docstring)."""
        until = self.unheard.get(channel)
        return until is None or until < time.monotonic()

    def drain(self) -> None:
        """Send everything queued now, in this thread."""
        self._send_batch(take_queued(self.queue, []))

    def _run(self) -> None:
        while True:  # wait for one, then take everything that queued while the last pipeline was on the wire
            self._send_batch(take_queued(self.queue, [self.queue.get()]))

    def _send_batch(self, batch) -> None:
        by_client: dict = {}
        for client, messages in batch:  # one client per app; several apps in one process only in tests
            by_client.setdefault(id(client), (client, []))[1].extend(messages)
        for client, messages in by_client.values():
            for channel, receivers in _send(client, messages).items():
                if receivers:
                    self.unheard.pop(channel, None)
                else:
                    self.unheard[channel] = time.monotonic() + self.recheck_seconds


def _send(client, messages: list[tuple[str, str]]) -> dict[str, int]:
    """One PUBLISH per channel: a channel's messages go out together, one per line (JSON never holds a
    raw newline), in the order they came. Under load a batch carries a few messages per job, and each
    PUBLISH costs the sender, Redis and every subscriber alike. Returns how many subscribers each
    channel reached (none if sending failed)."""
    by_channel: dict[str, list[str]] = {}
    for channel, message in messages:
        by_channel.setdefault(channel, []).append(message)
    channels = list(by_channel)
    try:
        if len(channels) == 1:  # the usual case: no pipeline to build
            data = "\n".join(by_channel[channels[0]])
            return {channels[0]: client.publish(scoped_channel(client, channels[0]), data)}
        pipe = client.pipeline(transaction=False)
        for channel in channels:
            pipe.publish(scoped_channel(client, channel), "\n".join(by_channel[channel]))
        return dict(zip(channels, pipe.execute()))
    except Exception:  # the database holds the truth; readers recover missed events from it
        log.exception("publishing %d message(s) failed", len(messages))
        return {}


def messages_in(data) -> list:
    """The messages one PUBLISH carried (see `_send`), as sent: str or bytes."""
    if data is None:
        return []
    return data.split(b"\n" if isinstance(data, bytes) else "\n")


publisher = Publisher()
