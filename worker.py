"""The RQ worker process: builds the app once, then works every queue the service uses, with the scheduler."""
import logging
import os

from rq import Worker
from rq.serializers import JSONSerializer

from app import create_app
from app.extensions import QUEUES, db, get_queue, get_redis

log = logging.getLogger("conveyor.worker")


def main() -> None:
    app = create_app()
    with app.app_context():
        engine = db.engine
        # A forked work horse must not reuse the parent's connections (SQLAlchemy's pooling docs).
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
        connection = get_redis()
        queues = [get_queue(name, connection) for name in QUEUES]
        worker = Worker(queues, connection=connection, serializer=JSONSerializer,
                        name=os.environ.get("RQ_WORKER_NAME") or None)
        for hook in app.extensions.get("conveyor_worker_hooks", []):
            hook(app, worker)
        log.info({"event": "worker_start", "queues": list(QUEUES), "name": worker.name})
        worker.work(with_scheduler=True, logging_level=app.config["LOG_LEVEL"])


if __name__ == "__main__":
    main()
