"""Every state change of a job or instance is a message on `conveyor:engine`, sent after commit; a web
process that found nobody subscribed does not build them for a moment (`publisher.heard`)."""
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import update

from app import clock
from app.engine.models import Job
from app.engine.tx import EVENTS_CHANNEL
from app.extensions import db
from app.notify.publisher import publisher
from tests.engine.helpers import Api, model, one_task, task, flow
from tests.support import listen, received


def _subscribe(redis_url):
    client, pubsub = listen(redis_url, EVENTS_CHANNEL)
    pubsub.client = client  # kept alive with the subscription
    return pubsub


def _events(pubsub, seconds=1.0, until=None):
    """The events received within `seconds`, or as soon as `until` of them arrived."""
    return [json.loads(m) for m in received(pubsub, until, seconds)]


def _with_boundary_error():
    return model("guarded", '<bpmn:startEvent id="s" /><bpmn:endEvent id="ok" /><bpmn:endEvent id="caught" />'
                 + task("t", "guarded")
                 + '<bpmn:boundaryEvent id="b" attachedToRef="t"><bpmn:errorEventDefinition errorRef="err" />'
                   '</bpmn:boundaryEvent>'
                 + flow("f1", "s", "t") + flow("f2", "t", "ok") + flow("f3", "b", "caught"),
                 after='<bpmn:error id="err" errorCode="NOPE" />')


def test_each_state_change_is_an_event_after_commit(app, client, key_headers, redis_url):
    api = Api(client, key_headers)
    api.deploy(one_task())
    api.deploy(_with_boundary_error())
    pubsub = _subscribe(redis_url)

    done = api.start("one")["process_instance_id"]
    job = api.activate("work", worker="w1")[0]
    assert api.complete(job["key"], {"x": 1})[0] == 200
    failing = api.start("one")["process_instance_id"]
    job = api.activate("work", worker="w2")[0]
    assert api.call("put", f"/api/v1/jobs/{job['key']}/fail", json={"retries": 2, "error_message": "x"})[0] == 200
    cancelled = api.start("one")["process_instance_id"]
    assert api.call("post", f"/api/v1/process-instances/{cancelled}/cancel")[0] == 200
    guarded = api.start("guarded")["process_instance_id"]
    job = api.activate("guarded", worker="w3")[0]
    assert api.call("post", f"/api/v1/jobs/{job['key']}/throw-error", json={"error_code": "NOPE"})[0] == 200
    # A refused completion changes nothing and says nothing.
    assert api.complete(job["key"])[0] == 409

    got = [(e["event"], e["process_instance_id"]) for e in _events(pubsub)]
    assert got == [
        ("process_instance.created", done), ("job.created", done), ("job.activated", done),
        ("job.completed", done), ("process_instance.completed", done),
        ("process_instance.created", failing), ("job.created", failing), ("job.activated", failing),
        ("job.failed", failing),
        ("process_instance.created", cancelled), ("job.created", cancelled), ("job.cancelled", cancelled),
        ("process_instance.cancelled", cancelled),
        ("process_instance.created", guarded), ("job.created", guarded), ("job.activated", guarded),
        ("job.error_thrown", guarded), ("process_instance.completed", guarded),
    ]


def test_an_updated_and_a_timed_out_job_are_events_too(app, client, key_headers, redis_url):
    api = Api(client, key_headers)
    api.deploy(one_task())
    instance = api.start("one")["process_instance_id"]
    job = api.activate("work", worker="slow")[0]
    pubsub = _subscribe(redis_url)

    assert api.call("patch", f"/api/v1/jobs/{job['key']}", json={"retries": 5})[0] == 200
    past = clock.utcnow() - timedelta(seconds=1)  # its deadline passed (an activated job is due again then)
    db.session.execute(update(Job).where(Job.key == job["key"]).values(deadline=past, available_at=past))
    db.session.commit()
    assert [j["key"] for j in api.activate("work", worker="fast")] == [job["key"]]

    got = [(e["event"], e["job_key"], e["process_instance_id"], e["worker"]) for e in _events(pubsub)]
    assert got == [("job.updated", job["key"], instance, "slow"), ("job.timed_out", job["key"], instance, "slow"),
                   ("job.activated", job["key"], instance, "fast")]


def test_events_are_not_built_while_the_channel_counts_as_unheard(app, client, key_headers, redis_url):
    api = Api(client, key_headers)
    api.deploy(one_task())
    pubsub = _subscribe(redis_url)  # to see what is sent; the publisher is told nobody listens
    publisher.unheard[EVENTS_CHANNEL] = time.monotonic() + 60  # as the background sender marks it
    try:
        first = api.start("one")["process_instance_id"]
        job = api.activate("work")[0]
        assert api.complete(job["key"])[0] == 200
        assert _events(pubsub, seconds=0.3) == []
    finally:
        publisher.unheard.pop(EVENTS_CHANNEL, None)
    second = api.start("one")["process_instance_id"]
    assert [(e["event"], e["process_instance_id"]) for e in _events(pubsub)] == [
        ("process_instance.created", second), ("job.created", second)]
    assert api.instance(first)["state"] == "COMPLETED"  # skipped news, not skipped work


@pytest.mark.slow
def test_a_subscriber_hears_every_event_of_a_web_process_under_load(live_server, app, key_headers, redis_url):
    api = Api(requests, key_headers, base=live_server)
    api.deploy(one_task("heard", "heard"))
    pubsub = _subscribe(redis_url)
    time.sleep(0.2)  # past the moment for which a web process may still count the channel unheard
    started = {api.start("heard")["process_instance_id"] for _ in range(24)}
    jobs = api.activate("heard", max_jobs=24)
    assert len(jobs) == 24
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda j: api.complete(j["key"])[0], jobs)) == [200] * 24
        assert list(pool.map(lambda j: api.complete(j["key"])[0], jobs)) == [409] * 24  # no second event

    got = _events(pubsub, seconds=10, until=24 * 5)
    for event in ("process_instance.created", "job.created", "job.activated", "job.completed",
                  "process_instance.completed"):
        assert sorted(e["process_instance_id"] for e in got if e["event"] == event) == sorted(started), event
