"""A real local webhook receiver and a real WebSocket client, for the notification tests."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import websocket


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers from a script per path."""

    def __init__(self):
        self.calls: list[dict] = []
        self.scripts: dict[str, list] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    script = receiver.scripts.get(self.path) or []
                    status, headers = script.pop(0) if script else (200, {})
                    receiver.calls.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                           "body": body, "status": status, "at": time.time()})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, *responses) -> str:
        """Script the next answers on `path`: each a status or (status, headers)."""
        self.scripts[path] = [r if isinstance(r, tuple) else (r, {}) for r in responses]
        return self.base + path

    def calls_to(self, path: str) -> list[dict]:
        with self.lock:
            return [c for c in self.calls if c["path"] == path]

    def wait_for(self, predicate, timeout=15.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                calls = list(self.calls)
            if predicate(calls):
                return calls
            time.sleep(0.05)
        raise AssertionError(f"receiver never saw what was expected; got {[(c['path'], c['body']) for c in calls]}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


class Socket:
    """A websocket-client connection speaking the /ws protocol."""

    def __init__(self, base: str, **kwargs):
        self.ws = websocket.create_connection(base.replace("http://", "ws://") + "/ws", timeout=10, **kwargs)

    def send(self, event, data=None):
        self.ws.send(json.dumps({"event": event, "data": data}))

    def auth(self, token, last_event_id=None):
        data = {"token": token}
        if last_event_id is not None:
            data["last_event_id"] = last_event_id
        self.send("auth", data)
        return self.recv()

    def recv(self, timeout=10.0):
        self.ws.settimeout(timeout)
        return json.loads(self.ws.recv())

    def recv_until(self, event, timeout=10.0) -> tuple[dict, list[dict]]:
        seen, deadline = [], time.time() + timeout
        while time.time() < deadline:
            frame = self.recv(max(0.1, deadline - time.time()))
            seen.append(frame)
            if frame["event"] == event:
                return frame, seen
        raise AssertionError(f"no {event} frame; saw {seen}")

    def nothing_for(self, seconds) -> list[dict]:
        frames, deadline = [], time.time() + seconds
        while time.time() < deadline:
            try:
                frame = self.recv(max(0.05, deadline - time.time()))
            except websocket.WebSocketTimeoutException:
                break
            if frame["event"] != "ping":
                frames.append(frame)
        return frames

    def close(self):
        self.ws.close()


@pytest.fixture
def sockets(live_server):
    opened = []

    def open_socket(**kwargs):
        s = Socket(live_server, **kwargs)
        opened.append(s)
        return s
    yield open_socket
    for s in opened:
        try:
            s.close()
        except Exception:  # already closed by the server: nothing to release
            continue


@pytest.fixture
def signed_in(make_user, login):
    """A user and its access token."""
    def make(email):
        user = make_user(email=email)
        return user, login(user)["access_token"]
    return make
