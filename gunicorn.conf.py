"""gunicorn settings for the Procfile's web process (see README: "Why gevent")."""
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '27555')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Long polls and WebSockets mostly wait: gevent holds thousands per process for memory, not threads.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "2000"))
threads = int(os.environ.get("GUNICORN_THREADS", "64"))  # used only with the gthread class
timeout = 60          # above LONG_POLL_MAX_MS (25 s): a waiting request is not a hung worker
graceful_timeout = 30
keepalive = 75        # behind a load balancer, keep connections longer than its idle timeout
accesslog = None      # the app writes one JSON line per request itself
errorlog = "-"


def post_worker_init(worker):
    # Requests hand their Redis messages to a background sender (app/notify/publisher.py), and
    # their completions to a committer that commits those arriving together in one transaction
    # (app/engine/completion_queue.py).
    from app.engine.completion_queue import queue
    from app.notify.publisher import publisher
    publisher.run_in_background()
    queue.run_in_background()
