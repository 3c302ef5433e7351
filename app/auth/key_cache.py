"""API keys already checked, remembered per web process: the worker hot path skips a database round trip.

A worker sends its key with every activate and complete; looking it up was a quarter of a
completion's CPU. An entry lives `API_KEY_CACHE_SECONDS` (0 turns the cache off). Revocation is
still immediate: revoking a key drops it here after its commit and publishes its id on
`conveyor:auth:revoked`, and every web process's listener drops it on receipt. Entries are served
only while that listener is subscribed (a process cut off from Redis checks the database on every
request, and forgets everything when it reconnects), and a lookup that raced a revocation is not
stored (`generation`).
"""
import logging
import os
import threading
import time

from app import redis_listener

CHANNEL = "conveyor:auth:revoked"
log = logging.getLogger("conveyor.auth.cache")


class Entry:
    __slots__ = ("identity", "expires", "last_used_at")

    def __init__(self, identity, expires: float, last_used_at):
        self.identity, self.expires, self.last_used_at = identity, expires, last_used_at


class KeyCache:
    def __init__(self):
        self.lock = threading.Lock()
        self.entries: dict[tuple, Entry] = {}
        self.generation = 0
        self.redis_url = None
        self.pid = None
        self.listening = False

    def usable(self, redis_url: str) -> bool:
        """Start this process's listener on first use; serve entries only while it is subscribed."""
        if self.pid != os.getpid():
            with self.lock:
                if self.pid != os.getpid():
                    self.pid, self.redis_url, self.listening, self.entries = os.getpid(), redis_url, False, {}
                    redis_listener.start(redis_url, CHANNEL, self._revoked, on_subscribed=self._hearing,
                                         on_lost=self._deaf, name="key-revocations")
        # One listener per process: an app on another Redis (only in tests) does not use the cache.
        return self.listening and redis_url == self.redis_url

    def get(self, scope: tuple) -> Entry | None:
        entry = self.entries.get(scope)
        if entry is None or entry.expires < time.monotonic():
            return None
        return entry

    def put(self, scope: tuple, entry: Entry, generation: int) -> None:
        with self.lock:
            if generation == self.generation:  # no revocation since the lookup began
                self.entries[scope] = entry

    def drop(self, key_id: int | None = None) -> None:
        """Forget one key (a revocation) or, with no id, every key."""
        with self.lock:
            self.generation += 1
            if key_id is None:
                self.entries = {}
            else:
                self.entries = {s: e for s, e in self.entries.items() if e.identity.id != key_id}

    def _hearing(self) -> None:
        self.drop()  # revocations sent while we were not listening are lost: start afresh
        self.listening = True

    def _deaf(self) -> None:
        self.listening = False  # check the database until we are back

    def _revoked(self, data) -> None:
        try:
            self.drop(int(data))
        except (TypeError, ValueError):
            log.warning("ignoring malformed revocation %r", data)


cache = KeyCache()
