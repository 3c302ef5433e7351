"""When the current request arrived, as a UTC datetime (for the server-overhead figure)."""
import time
from datetime import timedelta

from flask import g

from app import clock


def received_at():
    started = g.get("started")
    now = clock.utcnow()
    return now if started is None else now - timedelta(seconds=time.perf_counter() - started)
