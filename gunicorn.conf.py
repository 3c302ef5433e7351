"""gunicorn settings for the Procfile's web process (see README: "Why gevent")."""
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '27555')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Long polls and WebSockets mostly wait: gevent holds thousands per process for memory, not threads.
# gunicorn's gevent worker, with each new connection going to the process that holds the fewest.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "least_connections.LeastConnectionsWorker")
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
    # What gunicorn refuses itself (a request line over 4094 bytes, oversized headers) answers in JSON.
    import gunicorn_errors
    gunicorn_errors.install()


# Seats for least_connections: the master keeps the table of each web process's connections. (Imported
# in the hooks: gunicorn puts the project on sys.path only after it has read this file.)
def on_starting(server):
    import least_connections
    least_connections.on_starting(server)


def pre_fork(server, worker):
    import least_connections
    least_connections.pre_fork(server, worker)


def child_exit(server, worker):
    import least_connections
    least_connections.child_exit(server, worker)
