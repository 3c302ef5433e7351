"""Live fan-out: one Redis pub/sub listener per web process, rooms of sockets, one sender per socket.

The listener never writes to a socket: it turns each event into frames once and offers them to the
queues of the sockets in the event's rooms (`user:<id>`, `job:<id>`), so a slow client cannot hold
up the others. Each socket's sender is the only writer of its frames, under the socket's lock (the
WebSocket library is not thread-safe). Works with real threads and under gunicorn's gevent worker,
where `threading` and `queue` are patched into greenlets.
"""
import json
import logging
import os
import queue
import threading

from app import redis_listener
from app.notify import shapes
from app.notify.events import CHANNEL

log = logging.getLogger("conveyor.hub")
QUEUE_MAX = 1000
_STOP = object()
RESYNC = object()   # put on a socket's queue when the listener may have missed messages


def frames_for(message: dict) -> list[tuple[str, int, str]]:
    """(room, event id, text) for one published event; nothing for events this surface does not announce."""
    kind = shapes.KINDS.get(message.get("type"))
    if kind is None or message.get("user_id") is None:
        return []
    data = shapes.socket_data(message["type"], message.get("data") or {}, message.get("subject"))
    event_id = int(message["id"])
    frames = [(f"user:{message['user_id']}", event_id,
               json.dumps({"event": f"job:{kind}", "id": str(event_id), "data": data}, default=str))]
    if message.get("subject"):
        frames.append((f"job:{message['subject']}", event_id, json.dumps(
            {"event": f"job:{message['subject']}:{kind}", "id": str(event_id), "data": data}, default=str)))
    return frames


class Connection:
    def __init__(self, ws, user_id: int):
        self.ws, self.user_id = ws, user_id
        self.rooms: set[str] = set()
        self.lock = threading.Lock()
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_MAX)
        self.closed = threading.Event()
        self.replayed_upto = 0
        self.last_sent_id = 0

    def offer(self, item) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:  # a client this far behind is dropped; it reconnects with last_event_id
            self.close(4008, "Too slow: reconnect with last_event_id")

    def send(self, text: str) -> None:
        with self.lock:
            self.ws.send(text)

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        if not self.queue.full():  # else the sender notices `closed` at its next wake-up
            self.queue.put_nowait(_STOP)
        with self.lock:
            try:
                self.ws.close(reason=code, message=reason)
            except Exception:  # already gone: closing is best effort by nature
                log.debug("closing a dead socket", exc_info=True)


class Hub:
    def __init__(self):
        self.rooms: dict[str, set[Connection]] = {}
        self.lock = threading.Lock()
        self.pid = None
        self.subscribed = threading.Event()

    def ensure_started(self, redis_url: str) -> None:
        """Start this process's listener (once per process: a forked child starts its own)."""
        if self.pid != os.getpid():
            with self.lock:
                if self.pid != os.getpid():
                    self.pid = os.getpid()
                    self.rooms, self.subscribed = {}, threading.Event()
                    redis_listener.start(redis_url, CHANNEL, self._handle, on_subscribed=self._hearing,
                                         on_lost=lambda: None, name="conveyor-hub")
        self.subscribed.wait(5)

    def _hearing(self) -> None:
        if self.subscribed.is_set():  # subscribed again: what was published meanwhile is only in the database
            for conn in self.connections():
                conn.offer(RESYNC)
        self.subscribed.set()

    def _handle(self, data) -> None:
        try:
            self.dispatch(json.loads(data))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed event message")

    def join(self, room: str, conn: Connection) -> None:
        with self.lock:
            self.rooms.setdefault(room, set()).add(conn)
            conn.rooms.add(room)

    def leave(self, room: str, conn: Connection) -> None:
        with self.lock:
            members = self.rooms.get(room)
            if members is not None:
                members.discard(conn)
                if not members:
                    del self.rooms[room]
            conn.rooms.discard(room)

    def leave_all(self, conn: Connection) -> None:
        for room in list(conn.rooms):
            self.leave(room, conn)

    def connections(self) -> list[Connection]:
        with self.lock:
            return list({c for members in self.rooms.values() for c in members})

    def dispatch(self, message: dict) -> None:
        for room, event_id, text in frames_for(message):
            with self.lock:
                members = list(self.rooms.get(room, ()))
            for conn in members:
                conn.offer((event_id, text))


hub = Hub()
