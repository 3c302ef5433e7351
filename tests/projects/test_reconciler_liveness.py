"""A worker's liveness key does not depend on its reconciliation pass: a pass held up (a locked SQLite
database, a slow PostgreSQL) must not let the key lapse, or the next reconciler calls the live
worker's running job dead."""
import threading
import time

import redis

from app.projects import reconcile


def test_the_liveness_key_stays_fresh_while_a_reconciliation_pass_is_held_up(app, private_redis, monkeypatch):
    monkeypatch.setitem(app.config, "PROJECT_JOBS_RECONCILE_SECONDS", 0.5)  # key lives 2 s (its floor)
    monkeypatch.setitem(app.config, "REDIS_URL", private_redis)
    released = threading.Event()
    entered = threading.Event()

    def held_up(connection, *, grace):
        entered.set()
        released.wait(10)
        return {}
    monkeypatch.setattr(reconcile, "reconcile_once", held_up)

    class Worker:
        name = f"liveness-{time.time_ns()}"
    stop = reconcile.worker_hook(app, Worker())
    key = reconcile.ALIVE_KEY.format(Worker.name)
    connection = redis.Redis.from_url(private_redis)
    try:
        assert entered.wait(5), "the reconciler never ran a pass"
        time.sleep(3)  # longer than the key's time to live
        assert connection.exists(key), "the liveness key lapsed while a pass was held up"
        assert connection.pttl(key) > 1000
    finally:
        stop.set()
        released.set()
