"""Redis messages of committed transactions: at once by default, through one background sender in web workers."""
import threading
import time

import redis

from app.extensions import scoped_channel
from app.notify.publisher import UNHEARD_RECHECK_SECONDS, Publisher
from tests.support import listen, received, wait_until


def test_by_default_messages_are_out_before_send_returns(redis_url):
    client, pubsub = listen(redis_url, "conveyor:test-publisher-sync")
    Publisher().send(client, [("conveyor:test-publisher-sync", "one"), ("conveyor:test-publisher-sync", "two")])
    # Already on the server: nothing of ours runs after send() returned.
    assert received(pubsub, 2, seconds=1) == ["one", "two"]


def test_a_channel_s_messages_go_out_in_one_publish_in_their_order(redis_url):
    events, wake = "conveyor:test-publisher-events", "conveyor:test-publisher-wake"
    client, pubsub = listen(redis_url, events)
    pubsub.subscribe(scoped_channel(client, wake))
    messages = [(events, '{"n":1}'), (wake, '{"w":1}'), (events, '{"n":2,"s":"a\\nb"}'), (events, '{"n":3}')]
    Publisher().send(client, messages)
    deliveries = []
    got = received(pubsub, 4, seconds=1, deliveries=deliveries)
    assert [m for m in got if m.startswith('{"n"')] == ['{"n":1}', '{"n":2,"s":"a\\nb"}', '{"n":3}']
    assert [m for m in got if m.startswith('{"w"')] == ['{"w":1}']
    assert sorted(deliveries) == sorted([scoped_channel(client, events), scoped_channel(client, wake)])


def test_the_background_sender_keeps_each_writer_s_order_and_loses_nothing(redis_url):
    channel = "conveyor:test-publisher-background"
    client, pubsub = listen(redis_url, channel)
    publisher = Publisher()
    publisher.background = True  # as run_in_background(), without an atexit hook in the test process

    def writer(name):
        for i in range(100):
            publisher.send(client, [(channel, f"{name}:{i}")])

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = received(pubsub, 400)
    assert len(got) == 400
    for n in range(4):
        assert [m for m in got if m.startswith(f"w{n}:")] == [f"w{n}:{i}" for i in range(100)]


def test_drain_sends_what_is_still_queued(redis_url):
    channel = "conveyor:test-publisher-drain"
    client, pubsub = listen(redis_url, channel)
    publisher = Publisher()
    publisher.queue.put((client, [(channel, "left behind")]))  # queued, no sender running
    publisher.drain()
    assert received(pubsub, 1, seconds=1) == ["left behind"]


def test_a_channel_nobody_hears_counts_as_unheard_for_a_moment_then_is_tried_again(redis_url):
    channel = "conveyor:test-publisher-unheard"
    client = redis.Redis.from_url(redis_url)
    publisher = Publisher()
    publisher.background = True
    assert publisher.recheck_seconds == UNHEARD_RECHECK_SECONDS <= 0.1  # what a new subscriber may miss
    publisher.recheck_seconds = 0.5  # long enough to look at on a busy machine
    sent = time.monotonic()
    publisher.send(client, [(channel, "to nobody")])
    wait_until(lambda: not publisher.heard(channel), seconds=0.5, interval=0.01,
               what="the sender to find nobody subscribed")
    assert publisher.heard("conveyor:test-publisher-other")  # only that channel
    wait_until(lambda: publisher.heard(channel), seconds=5, interval=0.01, what="the channel to be tried again")
    assert 0.5 <= time.monotonic() - sent < 1.5

    _, pubsub = listen(redis_url, channel)  # now someone listens: the next message reaches them...
    publisher.send(client, [(channel, "heard")])
    assert received(pubsub, 1) == ["heard"]
    time.sleep(0.05)
    assert publisher.heard(channel)  # ...and the channel stays heard


def test_messages_sent_at_once_never_mute_a_channel(redis_url):
    channel = "conveyor:test-publisher-unheard-sync"
    publisher = Publisher()
    publisher.send(redis.Redis.from_url(redis_url), [(channel, "to nobody")])
    assert publisher.heard(channel)  # CLI, RQ and the test client: no background sender, nothing skipped
