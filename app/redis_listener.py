"""One Redis channel heard by a daemon thread (a greenlet under gevent) for the life of the process.

The web process keeps three such listeners (long-poll wake-ups, API key revocations, the WebSocket
hub's events); all need the same loop: subscribe, hand each message on, and when Redis goes away
say so, wait a second and subscribe again. `on_subscribed` and `on_lost` let the owner know whether
it is hearing messages, since anything published while it was not is lost.
"""
import logging
import threading
import time

from app.extensions import scoped_channel
from app.notify.publisher import messages_in

log = logging.getLogger("conveyor.redis_listener")


def start(redis_url: str, channel: str, on_message, *, on_subscribed, on_lost, name: str) -> None:
    threading.Thread(target=_listen, args=(redis_url, channel, on_message, on_subscribed, on_lost, name),
                     name=name, daemon=True).start()


def _listen(redis_url, channel, on_message, on_subscribed, on_lost, name) -> None:
    import redis
    hearing = warned = False
    while True:
        try:
            # Named, so that `CLIENT LIST` shows whose connection it is (and a test can cut just these).
            client = redis.Redis.from_url(redis_url, health_check_interval=30, client_name=f"conveyor:{name}")
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(scoped_channel(client, channel))
            on_subscribed()
            hearing = True
            for message in pubsub.listen():
                for data in messages_in(message.get("data")):
                    on_message(data)
        except Exception:  # Redis went away: keep trying
            on_lost()
            if hearing or not warned:  # once per outage, not every second of it
                log.warning("%s listener lost Redis; reconnecting", name, exc_info=True)
                warned = True
            hearing = False
            time.sleep(1)
