"""Long polling: a waiting activate request costs a greenlet (or thread) and an Event, not a DB loop.

One Redis pub/sub listener per web process (started lazily, as a daemon thread — a greenlet under
gunicorn's gevent worker, since gevent patches `threading`) receives `conveyor:engine:wake`
messages published after commit and wakes waiting requests of that (tenant, type), one per
activatable job, oldest waiter first — never the whole herd. A message with a future `at_ms`
(a job in retry backoff) wakes one waiter when that time comes. A waiter also wakes at its own
deadline and when the earliest backed-off or timed-out job of its type becomes activatable, which
it learns from its last query. Missed messages cost no job: the next poll finds it in the database.

A waiter whose client has hung up (killed, timed out on its side) activates nothing: before every
attempt that follows a wait it peeks at the client socket, and under gevent it also watches that
socket, so a disconnect frees its place in LONG_POLL_MAX_WAITERS at once instead of at its deadline.
A wake-up it may have taken passes to the next waiter of its type.
"""
import json
import logging
import os
import threading
import time
from collections import deque

from flask import current_app

from app import redis_listener
from app.engine import client_gone
from app.engine.tx import WAKE_CHANNEL
from app.errors import Unavailable

log = logging.getLogger("conveyor.engine.waiting")


class Waiter:
    __slots__ = ("key", "event")

    def __init__(self, key):
        self.key = key
        self.event = threading.Event()


class Hub:
    def __init__(self):
        self.lock = threading.Lock()
        self.waiters: dict[tuple, deque] = {}
        self.count = 0
        self.pid = None
        self.connected = False

    def ensure_listener(self, redis_url: str) -> None:
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
            self.waiters, self.count = {}, 0
            redis_listener.start(redis_url, WAKE_CHANNEL, self._handle, on_subscribed=self._hearing,
                                 on_lost=self._deaf, name="engine-wake")

    # Waiters still wake at their own times while Redis is away (see `activate`).
    def _hearing(self) -> None:
        self.connected = True

    def _deaf(self) -> None:
        self.connected = False

    def register(self, tenant: str, job_type: str, limit: int) -> Waiter:
        with self.lock:
            if self.count >= limit:
                raise Unavailable("Too many workers are waiting for jobs; retry shortly",
                                  {"waiting_requests": self.count}, code="TOO_MANY_WAITERS",
                                  headers={"Retry-After": "1"})
            waiter = Waiter((tenant, job_type))
            self.waiters.setdefault(waiter.key, deque()).append(waiter)
            self.count += 1
            return waiter

    def unregister(self, waiter: Waiter) -> None:
        with self.lock:
            queue = self.waiters.get(waiter.key)
            if queue is not None and waiter in queue:
                queue.remove(waiter)
                self.count -= 1
                if not queue:
                    del self.waiters[waiter.key]

    def notify(self, tenant: str, job_type: str, count: int = 1) -> int:
        """Wake up to `count` waiters of (tenant, type), oldest first; they stay registered until they leave."""
        woken = 0
        with self.lock:
            for waiter in self.waiters.get((tenant, job_type), ()):
                if woken >= count:
                    break
                if not waiter.event.is_set():
                    waiter.event.set()
                    woken += 1
        return woken

    def _handle(self, data) -> None:
        try:
            msg = json.loads(data)
            tenant, job_type, count, at_ms = msg["tenant"], msg["job_type"], int(msg.get("count", 1)), msg.get("at_ms")
        except (TypeError, ValueError, KeyError):
            log.warning("ignoring malformed wake message %r", data)
            return
        delay = (at_ms or 0) / 1000 - time.time()
        if delay > 0:
            timer = threading.Timer(delay, self.notify, args=(tenant, job_type, count))
            timer.daemon = True
            timer.start()
        else:
            self.notify(tenant, job_type, count)


hub = Hub()


def activate(*, tenant: str, job_type: str, worker: str, max_jobs: int, timeout_ms: int,
             fetch_variables=None, wait_ms: int) -> list[dict]:
    """Activate now, or wait for jobs up to wait_ms; an empty list is a normal answer, and the only
    one for a request whose client hung up while it waited."""
    from app.engine.activation import activate_now
    from app.engine.stats import record_poll
    from app.extensions import db

    record_poll(tenant, job_type, worker)
    wait_ms = max(0, min(wait_ms, current_app.config["LONG_POLL_MAX_MS"]))
    args = dict(tenant=tenant, job_type=job_type, worker=worker, max_jobs=max_jobs, timeout_ms=timeout_ms,
                fetch_variables=fetch_variables)
    if wait_ms == 0:
        return activate_now(**args, want_upcoming=False)[0]
    hub.ensure_listener(current_app.config["REDIS_URL"])
    # Registered before the first query, so a job committed in between still wakes us.
    waiter = hub.register(tenant, job_type, current_app.config["LONG_POLL_MAX_WAITERS"])
    give_up = time.monotonic() + wait_ms / 1000
    client, stop_watching = client_gone.client_socket(), None
    try:
        while True:
            waiter.event.clear()
            jobs, upcoming = activate_now(**args)
            db.session.remove()  # a waiting request holds no database connection
            left = give_up - time.monotonic()
            if jobs or left <= 0:
                return jobs
            if upcoming is not None:
                left = min(left, max(0.0, upcoming.timestamp() - time.time()) + 0.005)
            if not hub.connected:
                left = min(left, 1.0)  # no notifications while Redis is away: look again soon
            if stop_watching is None:  # the first wait: from now on a hang-up wakes us too
                stop_watching = client_gone.watch(client, waiter.event.set)
            waiter.event.wait(left)
            if client is not None and client_gone.is_gone(client):
                log.info("worker %r left its wait for %r jobs: its connection is closed", worker, job_type)
                hub.unregister(waiter)
                if waiter.event.is_set():
                    hub.notify(tenant, job_type)  # the wake-up may have been for a job: pass it on
                return []  # the answer goes nowhere
    finally:
        if stop_watching is not None:
            stop_watching()
        hub.unregister(waiter)
