"""Webhook deliveries through a real RQ worker to a real local receiver: payloads, signatures, retries."""
import json
import sqlite3
import time

import pytest

from app.extensions import db
from app.notify import events, signing
from tests import support


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def announce(user_id, type_, job_id="job-1", **fields):
    payload = {"id": job_id, "type": "exampleJob", "status": "Running", "progress": 0, "result": None,
               "error": None, **fields}
    db.session.rollback()  # no read snapshot left open: SQLite could not turn it into a write
    ev = events.record(type_, payload, user_id=user_id, subject=job_id)
    db.session.flush()
    event_id = ev.id
    db.session.commit()
    return event_id


def make_webhook(client, token, url, event_type="all"):
    res = client.post("/webhooks", headers=auth(token), json={"url": url, "eventType": event_type})
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def deliveries(client, token, hook_id):
    return client.get(f"/webhooks/{hook_id}/deliveries", headers=auth(token)).get_json()["deliveries"]


def wait_until(check):
    return support.wait_until(check, before=db.session.rollback, what="the delivery")


def test_a_completed_job_reaches_the_webhook_signed_and_in_the_spec_shape(client, signed_in, receiver, rq_worker):
    user, token = signed_in("a@example.com")
    hook = make_webhook(client, token, receiver.answer("/hook"))
    event_id = announce(user.id, "job.completed", status="Completed", progress=100, result={"rows": 3})
    call = receiver.wait_for(lambda calls: calls)[0]
    assert json.loads(call["body"]) == {"id": "job-1", "jobname": "exampleJob", "userId": user.id,
                                        "result": {"rows": 3}, "eventType": "completed"}
    assert call["headers"]["webhook-id"] == f"evt_{event_id}"
    assert signing.verify(hook["secret"], call["headers"], call["body"])
    assert not signing.verify(hook["secret"], call["headers"], call["body"] + b" ")
    log = wait_until(lambda: [d for d in deliveries(client, token, hook["id"]) if d["status"] == "succeeded"])
    assert log[0]["log"][0]["statusCode"] == 200 and log[0]["log"][0]["durationMs"] >= 0


def test_progress_and_failure_payloads_follow_the_spec(client, signed_in, receiver, rq_worker):
    user, token = signed_in("a@example.com")
    make_webhook(client, token, receiver.answer("/hook"))
    announce(user.id, "job.progress", progress=75)
    receiver.wait_for(lambda calls: len(calls) == 1)
    announce(user.id, "job.failed", status="Failed", error="disk full")
    calls = receiver.wait_for(lambda calls: len(calls) == 2)
    assert json.loads(calls[0]["body"]) == {"id": "job-1", "jobname": "exampleJob", "userId": user.id,
                                            "progress": 75, "eventType": "progress"}
    assert json.loads(calls[1]["body"]) == {"id": "job-1", "jobname": "exampleJob", "userId": user.id,
                                            "error": "disk full", "eventType": "failed"}


def test_a_receiver_answering_500_twice_then_200_gets_exactly_one_successful_delivery(
        client, signed_in, receiver, rq_worker):
    user, token = signed_in("a@example.com")
    busy = (500, {"Retry-After": "1"})
    hook = make_webhook(client, token, receiver.answer("/flaky", busy, busy, 200))
    announce(user.id, "job.completed", status="Completed", result="ok")
    calls = receiver.wait_for(lambda calls: any(c["status"] == 200 for c in calls), timeout=20)
    time.sleep(1.5)  # nothing more may arrive
    calls = receiver.calls_to("/flaky")
    assert [c["status"] for c in calls] == [500, 500, 200]
    assert len({c["headers"]["webhook-id"] for c in calls}) == 1, "webhook-id names the event across retries"
    assert all(signing.verify(hook["secret"], c["headers"], c["body"]) for c in calls)
    (delivery,) = deliveries(client, token, hook["id"])
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 3
    assert [a["statusCode"] for a in delivery["log"]] == [500, 500, 200]
    assert delivery["log"][0]["error"] == "HTTP 500"


def test_410_gone_disables_the_webhook_and_says_why(client, signed_in, receiver, rq_worker):
    user, token = signed_in("a@example.com")
    hook = make_webhook(client, token, receiver.answer("/gone", 410))
    announce(user.id, "job.completed", status="Completed")
    listed = wait_until(lambda: [h for h in client.get("/webhooks", headers=auth(token)).get_json()["webhooks"]
                                 if not h["active"]])
    assert "410" in listed[0]["disabledReason"]
    announce(user.id, "job.completed", job_id="job-2", status="Completed")
    time.sleep(1)
    assert len(receiver.calls_to("/gone")) == 1, "a disabled webhook receives nothing more"
    res = client.post(f"/webhooks/{hook['id']}/deliveries/{deliveries(client, token, hook['id'])[0]['id']}/redeliver",
                      headers=auth(token))
    assert res.status_code == 409 and res.get_json()["error"]["code"] == "WEBHOOK_DISABLED"


def test_redirects_are_not_followed(client, signed_in, receiver, rq_worker):
    user, token = signed_in("a@example.com")
    receiver.answer("/inside")
    hook = make_webhook(client, token, receiver.answer("/moved", (302, {"Location": receiver.base + "/inside"})))
    announce(user.id, "job.completed", status="Completed")
    d = wait_until(lambda: [d for d in deliveries(client, token, hook["id"]) if d["attempts"] >= 1])[0]
    assert d["status"] == "pending" and d["log"][0]["statusCode"] == 302
    assert "redirects are not followed" in d["log"][0]["error"]
    assert receiver.calls_to("/inside") == []


def test_a_webhook_hears_only_its_event_type_and_only_its_owners_jobs(client, signed_in, receiver, rq_worker):
    user, token = signed_in("a@example.com")
    other, other_token = signed_in("b@example.com")
    make_webhook(client, token, receiver.answer("/done"), "completed")
    make_webhook(client, other_token, receiver.answer("/others"), "all")
    announce(user.id, "job.progress", progress=10)
    announce(user.id, "job.completed", status="Completed")
    receiver.wait_for(lambda calls: calls)
    time.sleep(1)
    assert [json.loads(c["body"])["eventType"] for c in receiver.calls_to("/done")] == ["completed"]
    assert receiver.calls_to("/others") == []


def test_progress_is_coalesced_and_completion_always_arrives_last(client, signed_in, receiver, rq_worker):
    user, token = signed_in("a@example.com")
    make_webhook(client, token, receiver.answer("/hook"))
    for percent in range(1, 101):
        announce(user.id, "job.progress", progress=percent)
    announce(user.id, "job.completed", status="Completed", progress=100, result="done")
    receiver.wait_for(lambda calls: any(json.loads(c["body"])["eventType"] == "completed" for c in calls))
    time.sleep(1.5)
    kinds = [json.loads(c["body"])["eventType"] for c in receiver.calls_to("/hook")]
    assert kinds.count("completed") == 1 and kinds[-1] == "completed"
    assert 1 <= kinds.count("progress") <= 5, kinds


def test_redelivering_sends_the_same_event_again_with_the_same_webhook_id(client, signed_in, receiver, rq_worker):
    user, token = signed_in("a@example.com")
    hook = make_webhook(client, token, receiver.answer("/hook"))
    announce(user.id, "job.completed", status="Completed")
    first = receiver.wait_for(lambda calls: calls)[0]
    delivery_id = wait_until(lambda: deliveries(client, token, hook["id"]))[0]["id"]
    res = client.post(f"/webhooks/{hook['id']}/deliveries/{delivery_id}/redeliver", headers=auth(token))
    assert res.status_code == 202 and res.get_json()["redeliveryOf"] == delivery_id
    second = receiver.wait_for(lambda calls: len(calls) == 2)[1]
    assert second["headers"]["webhook-id"] == first["headers"]["webhook-id"] and second["body"] == first["body"]


def test_a_delivery_whose_rq_job_was_lost_is_sent_by_the_sweep(app, client, signed_in, receiver, rq_worker):
    from datetime import timedelta

    from app import clock
    from app.extensions import get_redis
    from app.notify import delivery
    from app.notify.models import Delivery
    user, token = signed_in("a@example.com")
    event_id = announce(user.id, "job.completed", status="Completed")  # before the webhook: no delivery of its own
    hook = make_webhook(client, token, receiver.answer("/hook"))
    stale = clock.utcnow() - timedelta(minutes=5)
    # As a Redis restart leaves it: committed, pending, overdue, claimed by a worker that died.
    db.session.add(Delivery(webhook_id=hook["id"], event_id=event_id, job_id="job-1", event_type="completed",
                            status="pending", attempts=0, next_attempt_at=stale, claimed_until=stale,
                            created_at=stale))
    db.session.commit()
    assert delivery.sweep(get_redis()) == 1
    receiver.wait_for(lambda calls: calls)


def test_an_endpoint_that_keeps_failing_is_disabled_with_a_reason(app, client, signed_in, receiver):
    from app import clock
    from app.notify import delivery
    from app.notify.models import Delivery
    app.config.update(WEBHOOK_RETRY_DELAYS_S=(), WEBHOOK_DISABLE_AFTER=2)
    user, token = signed_in("a@example.com")
    user_id = user.id  # deliver() ends the session, detaching `user`
    hook = make_webhook(client, token, receiver.answer("/down", 503, 503))
    for n in range(2):
        # The event row alone, without events.record: no outbox row and no RQ task, so a worker left
        # running by earlier tests cannot send (and succeed) before this test's in-process sends.
        event = events.Event(type="job.failed", user_id=user_id, subject=f"job-{n}", created_at=clock.utcnow(),
                             payload={"id": f"job-{n}", "type": "exampleJob", "status": "Failed", "error": "x"})
        db.session.add(event)
        db.session.flush()
        event_id = event.id
        row = Delivery(webhook_id=hook["id"], event_id=event_id, job_id=f"job-{n}", event_type="completed",
                       status="pending", attempts=0, next_attempt_at=clock.utcnow(), created_at=clock.utcnow())
        db.session.add(row)
        db.session.commit()
        receiver.answer("/down", 503)
        assert delivery.deliver(row.id) == "failed"
    (listed,) = client.get("/webhooks", headers=auth(token)).get_json()["webhooks"]
    assert listed["active"] is False and "2 deliveries in a row failed" in listed["disabledReason"]
    assert "HTTP 503" in listed["disabledReason"]
    res = client.put(f"/webhooks/{hook['id']}", headers=auth(token), json={"active": True})
    assert res.get_json()["disabledReason"] is None and res.get_json()["consecutiveFailures"] == 0


def test_a_target_that_turns_private_is_refused_at_connection_time(app, client, signed_in, receiver):
    from app import clock
    from app.notify import delivery
    from app.notify.models import Delivery
    user, token = signed_in("a@example.com")
    user_id = user.id  # deliver() ends the session, detaching `user`
    hook = make_webhook(client, token, receiver.answer("/hook"))  # allowed when saved (private targets on)
    app.config.update(ALLOW_PRIVATE_WEBHOOKS=False, WEBHOOK_RETRY_DELAYS_S=())
    event_id = announce(user_id, "job.failed")
    db.session.query(Delivery).delete()  # this test sends in-process, not through the worker
    row = Delivery(webhook_id=hook["id"], event_id=event_id, job_id="job-1", event_type="completed",
                   status="pending", attempts=0, next_attempt_at=clock.utcnow(), created_at=clock.utcnow())
    db.session.add(row)
    db.session.commit()
    assert delivery.deliver(row.id) == "failed"
    assert receiver.calls == []
    (d,) = client.get(f"/webhooks/{hook['id']}/deliveries", headers=auth(token)).get_json()["deliveries"]
    assert "non-public" in d["lastError"]


def test_a_send_is_not_refused_by_a_read_left_open_while_another_process_wrote(
        app, database_url, client, signed_in, receiver):
    """SQLite: a read transaction left open (a delivery reloaded after the previous send of a drain) cannot
    turn into the claim's write once another process has committed; the claim begins its own."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's deferred-transaction upgrade is the subject")
    from app import clock
    from app.notify import delivery
    from app.notify.models import Delivery
    user, token = signed_in("a@example.com")
    event_id = announce(user.id, "job.progress", progress=50)  # before the webhook: no delivery of its own
    hook = make_webhook(client, token, receiver.answer("/hook"))
    row = Delivery(webhook_id=hook["id"], event_id=event_id, job_id="job-1", event_type="progress",
                   status="pending", attempts=0, next_attempt_at=clock.utcnow(), created_at=clock.utcnow())
    db.session.add(row)
    db.session.commit()
    delivery_id = row.id
    assert row.status == "pending"  # reloads the expired row: a read transaction is open
    print("IN TX", db.session().in_transaction())
    other = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("UPDATE users SET name = name || '.'")  # another process commits a change
    other.close()

    assert delivery._send(delivery_id) == "succeeded"
    assert len(receiver.calls_to("/hook")) == 1


def test_a_task_left_from_an_earlier_attempt_does_not_send_the_retry_before_its_backoff(
        app, client, signed_in, receiver):
    from datetime import timedelta

    from app import clock
    from app.notify import delivery
    from app.notify.models import Delivery
    app.config.update(WEBHOOK_DRAIN_S=0)
    user, token = signed_in("a@example.com")
    event_id = announce(user.id, "job.completed", status="Completed")  # before the webhook: no delivery of its own
    hook = make_webhook(client, token, receiver.answer("/hook"))
    # Attempt 1 failed (sent by another task's drain) and the retry is due in 10 s; the task queued
    # for attempt 1 runs now.
    row = Delivery(webhook_id=hook["id"], event_id=event_id, job_id="job-1", event_type="completed",
                   status="pending", attempts=1, next_attempt_at=clock.utcnow() + timedelta(seconds=10),
                   created_at=clock.utcnow())
    db.session.add(row)
    db.session.commit()
    delivery_id = row.id

    assert delivery.deliver(delivery_id) == "not pending or not due"
    time.sleep(0.3)
    assert receiver.calls_to("/hook") == []

    db.session.get(Delivery, delivery_id).next_attempt_at = clock.utcnow()
    db.session.commit()
    assert delivery.deliver(delivery_id) == "succeeded"
    assert len(receiver.calls_to("/hook")) == 1
