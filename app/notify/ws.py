"""The `/ws` WebSocket: authenticate in the first frame, then job events as `{"event", "id", "data"}` frames.

Protocol (README, "Notifications"): the client sends `{"event": "auth", "data": {"token": <JWT>,
"last_event_id"?: "…"}}` within WS_AUTH_TIMEOUT_S; the server answers `ready` (or closes with a
4401 code and a reason), replays what the client missed, then streams `job:progress|completed|failed`
for the user's jobs and `job:<id>:…` for subscribed ones. The handler holds no database connection
while it waits.
"""
import json
import logging
import queue
import threading
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app, request
from simple_websocket import ConnectionClosed
from sqlalchemy import func, select

from app import clock
from app.auth import service as auth_service
from app.auth import tokens
from app.api.base import Blueprint
from app.errors import AppError, Forbidden
from app.extensions import db, get_redis, sock
from app.notify import jobs, shapes
from app.notify.events import Event
from app.notify.hub import _STOP, RESYNC, Connection, frames_for, hub

log = logging.getLogger("conveyor.ws")
ws_bp = Blueprint("ws", __name__, description="The `/ws` WebSocket (protocol in the README)")
AUTH_TIMEOUT_S = 5
PING_S = 25
MAX_PER_USER = 20
MAX_SUBSCRIPTIONS = 100
REPLAY_MAX = 1000
REPLAY_MAX_AGE = timedelta(hours=24)


@ws_bp.before_request
def check_origin():
    """Browsers always send Origin: only listed ones (default: this service's own host) may open a socket."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    allowed = current_app.config["WS_ALLOWED_ORIGINS"]
    ok = (origin in allowed or "*" in allowed) if allowed else urlsplit(origin).netloc == request.host
    if not ok:
        raise Forbidden("This Origin may not open a WebSocket", {"origin": origin}, code="ORIGIN_NOT_ALLOWED")


def _frame(event: str, data) -> str:
    return json.dumps({"event": event, "data": data}, default=str)


class _Presence:
    """Open sockets per user, across every web process: a Redis sorted set of sockets scored by expiry."""

    def __init__(self, redis_client, user_id: int):
        self.redis, self.key, self.member = redis_client, f"conveyor:ws:user:{user_id}", uuid.uuid4().hex

    def claim(self, cap: int) -> bool:
        now = time.time()
        pipe = self.redis.pipeline()
        pipe.zremrangebyscore(self.key, 0, now)
        pipe.zadd(self.key, {self.member: now + 3 * PING_S})
        pipe.zcard(self.key)
        pipe.expire(self.key, 3 * PING_S)
        count = pipe.execute()[2]
        if count > cap:
            self.release()
            return False
        return True

    def refresh(self) -> None:
        self.redis.zadd(self.key, {self.member: time.time() + 3 * PING_S})
        self.redis.expire(self.key, 3 * PING_S)

    def release(self) -> None:
        self.redis.zrem(self.key, self.member)


def _close(ws, code: int, error_code: str, message: str) -> None:
    ws.send(_frame("error", {"code": error_code, "message": message}))
    ws.close(reason=code, message=f"{error_code}: {message}"[:120])


def _authenticate(ws):
    raw = ws.receive(timeout=current_app.config.get("WS_AUTH_TIMEOUT_S", AUTH_TIMEOUT_S))
    if raw is None:
        _close(ws, 4408, "AUTH_TIMEOUT", "Send {\"event\": \"auth\", \"data\": {\"token\": …}} first")
        return None
    try:
        msg = json.loads(raw)
        assert msg.get("event") == "auth" and isinstance(msg.get("data"), dict)
        token = str(msg["data"]["token"])
    except (ValueError, AssertionError, KeyError, AttributeError, TypeError):
        _close(ws, 4400, "AUTH_REQUIRED", "The first frame must be {\"event\": \"auth\", \"data\": {\"token\": …}}")
        return None
    try:
        user, _ = auth_service.user_from_access_token(token)
        expires = tokens.decode("access", token)["exp"]
    except AppError as err:
        _close(ws, 4401, err.code, err.message)
        return None
    return user.id, float(expires), msg["data"].get("last_event_id")


def _replay(conn: Connection, after_id: int) -> int:
    """Send the user's events after `after_id` from the database; too many or too old: tell it to resync."""
    latest = db.session.scalar(select(func.max(Event.id)).where(Event.user_id == conn.user_id)) or 0
    anchor = db.session.get(Event, after_id) if after_id else None
    too_old = after_id > 0 and (anchor is None or anchor.created_at < clock.utcnow() - REPLAY_MAX_AGE)
    rows = [] if too_old else db.session.scalars(select(Event).where(
        Event.user_id == conn.user_id, Event.id > after_id, Event.type.in_(tuple(shapes.KINDS)))
        .order_by(Event.id).limit(REPLAY_MAX + 1)).all()
    if too_old or len(rows) > REPLAY_MAX or after_id > latest:
        conn.replayed_upto = max(conn.replayed_upto, latest)
        conn.send(_frame("resync", {"reason": "Too many or too old events missed: reload GET /jobs",
                                    "lastEventId": str(latest)}))
        return 0
    sent = 0
    for ev in rows:
        for room, event_id, text in frames_for(ev.as_message()):
            if room in conn.rooms:
                conn.send(text)
                sent += 1
        conn.replayed_upto = max(conn.replayed_upto, ev.id)
    conn.replayed_upto = max(conn.replayed_upto, latest)
    return sent


def _sender(conn: Connection, app, presence: _Presence, expires_at: float) -> None:
    ping = app.config.get("WS_PING_S", PING_S)
    try:
        while not conn.closed.is_set():
            if time.time() >= expires_at:
                conn.send(_frame("error", {"code": "TOKEN_EXPIRED", "message": "Token has expired"}))
                conn.close(4401, "TOKEN_EXPIRED: sign in again and reconnect with last_event_id")
                return
            try:
                item = conn.queue.get(timeout=min(ping, max(0.1, expires_at - time.time())))
            except queue.Empty:
                conn.send(_frame("ping", {"t": clock.epoch_ms(clock.utcnow())}))
                presence.refresh()
                continue
            if item is _STOP:
                return
            if item is RESYNC:
                with app.app_context():
                    try:
                        _replay(conn, max(conn.last_sent_id, conn.replayed_upto))
                    finally:
                        db.session.remove()
                continue
            event_id, text = item
            if event_id <= conn.replayed_upto:
                continue
            conn.send(text)
            conn.last_sent_id = max(conn.last_sent_id, event_id)
    except (ConnectionClosed, OSError):
        conn.close(1001, "gone")


def _parse_last_id(raw) -> int:
    try:
        return max(0, int(raw))
    except (TypeError, ValueError):
        return 0


def _handle(conn: Connection, raw: str) -> None:
    try:
        msg = json.loads(raw)
        event, data = msg.get("event"), msg.get("data")
    except (ValueError, AttributeError):
        conn.send(_frame("error", {"code": "INVALID_JSON", "message": "Frames are JSON {\"event\", \"data\"}"}))
        return
    job_id = data.get("jobId") if isinstance(data, dict) else data
    if event == "ping":
        conn.send(_frame("pong", data))
    elif event in ("subscribe:job", "unsubscribe:job") and isinstance(job_id, str) and 0 < len(job_id) <= 64:
        if event == "unsubscribe:job":
            hub.leave(f"job:{job_id}", conn)
            conn.send(_frame("unsubscribed", {"jobId": job_id}))
            return
        try:
            visible = jobs.may_watch(user=auth_service.get_user(conn.user_id), job_id=job_id)
        finally:
            db.session.remove()  # never hold a connection between frames
        if not visible:
            conn.send(_frame("error", {"code": "JOB_NOT_FOUND", "message": "No such job", "jobId": job_id}))
        elif len(conn.rooms) > MAX_SUBSCRIPTIONS:
            conn.send(_frame("error", {"code": "TOO_MANY_SUBSCRIPTIONS", "message": f"At most {MAX_SUBSCRIPTIONS}"}))
        else:
            hub.join(f"job:{job_id}", conn)
            conn.send(_frame("subscribed", {"jobId": job_id}))
    else:
        conn.send(_frame("error", {"code": "UNKNOWN_EVENT", "message": f"Unknown or malformed event {event!r}"}))


@sock.route("/ws", bp=ws_bp)
def websocket(ws):
    app = current_app._get_current_object()
    try:
        auth = _authenticate(ws)
    finally:
        db.session.remove()
    if auth is None:
        return
    user_id, expires_at, last_event_id = auth
    redis_client = get_redis()
    presence = _Presence(redis_client, user_id)
    cap = app.config.get("WS_MAX_PER_USER", MAX_PER_USER)
    if not presence.claim(cap):
        _close(ws, 4429, "TOO_MANY_SOCKETS", f"At most {cap} open sockets per user")
        return
    hub.ensure_started(app.config["REDIS_URL"])
    conn = Connection(ws, user_id)
    hub.join(f"user:{user_id}", conn)
    try:
        try:
            latest = db.session.scalar(select(func.max(Event.id)).where(Event.user_id == user_id)) or 0
            conn.send(_frame("ready", {"userId": user_id, "lastEventId": str(latest)}))
            if last_event_id not in (None, ""):
                _replay(conn, _parse_last_id(last_event_id))
            conn.replayed_upto = max(conn.replayed_upto, latest)
        finally:
            db.session.remove()
        threading.Thread(target=_sender, args=(conn, app, presence, expires_at), daemon=True,
                         name=f"ws-sender-{user_id}").start()
        while not conn.closed.is_set():
            raw = ws.receive()
            if raw is None:
                continue
            _handle(conn, raw)
    finally:  # flask-sock treats ConnectionClosed as the normal end of a socket
        hub.leave_all(conn)
        conn.close(1000, "bye")
        presence.release()
