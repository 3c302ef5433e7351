"""The /ws protocol against the real web process (gunicorn + gevent) with a real WebSocket client."""
import time

import pytest
import websocket

from app.extensions import db
from app.notify import events


def announce(user_id, type_, job_id="job-1", **fields):
    db.session.rollback()
    payload = {"id": job_id, "type": "exampleJob", "status": "Running", "progress": 0, "result": None,
               "error": None, **fields}
    ev = events.record(type_, payload, user_id=user_id, subject=job_id)
    db.session.flush()
    event_id = ev.id
    db.session.commit()
    return event_id


def test_a_socket_authenticates_in_its_first_frame_and_hears_its_users_job_events(signed_in, sockets):
    user, token = signed_in("a@example.com")
    ws = sockets()
    ready = ws.auth(token)
    assert ready["event"] == "ready" and ready["data"]["userId"] == user.id
    announce(user.id, "job.progress", progress=40)
    frame, _ = ws.recv_until("job:progress")
    assert frame["data"] == {"jobId": "job-1", "jobname": "exampleJob", "state": "active", "progress": 40}
    event_id = announce(user.id, "job.completed", status="Completed", progress=100, result={"rows": 2})
    frame, _ = ws.recv_until("job:completed")
    assert frame["id"] == str(event_id) and frame["data"]["result"] == {"rows": 2}
    announce(user.id, "job.failed", job_id="job-2", status="Failed", error="boom")
    frame, _ = ws.recv_until("job:failed")
    assert frame["data"]["jobId"] == "job-2" and frame["data"]["error"] == "boom"


def test_another_user_receives_nothing(signed_in, sockets):
    user, token = signed_in("a@example.com")
    _, other_token = signed_in("b@example.com")
    mine, theirs = sockets(), sockets()
    mine.auth(token)
    theirs.auth(other_token)
    announce(user.id, "job.progress", progress=10)
    mine.recv_until("job:progress")
    assert theirs.nothing_for(0.7) == []


def test_a_bad_token_closes_the_socket_with_a_clear_reason(sockets):
    ws = sockets()
    frame = ws.auth("not-a-jwt")
    assert frame["event"] == "error" and frame["data"]["code"] == "INVALID_TOKEN"
    opcode, data = ws.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 4401 and b"INVALID_TOKEN" in data[2:]


def test_an_expired_token_is_refused(app, signed_in, sockets):
    import jwt
    user, token = signed_in("a@example.com")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["exp"] = claims["iat"] - 10
    expired = jwt.encode(claims, app.config["TOKEN_SECRET"], algorithm="HS256")
    frame = sockets().auth(expired)
    assert frame["event"] == "error" and frame["data"]["code"] == "TOKEN_EXPIRED"


def test_a_socket_that_does_not_authenticate_in_time_is_closed(live_server):
    ws = websocket.create_connection(live_server.replace("http", "ws") + "/ws", timeout=10)
    started = time.time()
    frame = ws.recv()
    assert "AUTH_TIMEOUT" in frame and time.time() - started < 8
    ws.close()


def test_a_foreign_origin_is_refused_before_the_upgrade(live_server):
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        websocket.create_connection(live_server.replace("http", "ws") + "/ws", origin="https://evil.example",
                                    timeout=5)
    assert err.value.status_code == 403


def test_the_services_own_origin_is_allowed(live_server, signed_in):
    _, token = signed_in("a@example.com")
    ws = websocket.create_connection(live_server.replace("http", "ws") + "/ws", origin=live_server, timeout=5)
    ws.send('{"event": "auth", "data": {"token": "%s"}}' % token)
    assert '"ready"' in ws.recv()
    ws.close()


def test_subscribing_to_a_job_adds_its_own_events_only_for_jobs_the_user_may_see(app, signed_in, sockets):
    from tests.notify.test_jobs import add_job
    user, token = signed_in("a@example.com")
    other, other_token = signed_in("b@example.com")
    job_id = add_job(user.id, "Running")  # a row only: no worker runs it and adds events of its own
    theirs = sockets()
    theirs.auth(other_token)
    theirs.send("subscribe:job", job_id)
    frame = theirs.recv()
    assert frame["event"] == "error" and frame["data"]["code"] == "JOB_NOT_FOUND"
    mine = sockets()
    mine.auth(token)
    mine.send("subscribe:job", job_id)
    assert mine.recv_until("subscribed")[0]["data"] == {"jobId": job_id}
    announce(user.id, "job.progress", job_id=job_id, progress=50)
    _, seen = mine.recv_until(f"job:{job_id}:progress")
    mine.send("unsubscribe:job", job_id)
    mine.recv_until("unsubscribed")
    announce(user.id, "job.progress", job_id=job_id, progress=60)
    frames = mine.nothing_for(0.7)
    assert [f["event"] for f in frames] == ["job:progress"]
    assert theirs.nothing_for(0.3) == []


def test_a_reconnecting_client_receives_what_it_missed(signed_in, sockets):
    user, token = signed_in("a@example.com")
    ws = sockets()
    ws.auth(token)
    first = announce(user.id, "job.progress", progress=10)
    ws.recv_until("job:progress")
    ws.close()
    missed = [announce(user.id, "job.progress", progress=p) for p in (20, 30)]
    missed.append(announce(user.id, "job.completed", status="Completed", result="r"))
    again = sockets()
    ready = again.auth(token, last_event_id=str(first))
    assert ready["event"] == "ready"
    frames = [again.recv() for _ in range(3)]
    assert [f["id"] for f in frames] == [str(i) for i in missed]
    assert [f["event"] for f in frames] == ["job:progress", "job:progress", "job:completed"]
    assert again.nothing_for(0.5) == [], "nothing is sent twice"


def test_a_client_too_far_behind_is_told_to_resync(signed_in, sockets):
    user, token = signed_in("a@example.com")
    announce(user.id, "job.progress", progress=10)
    ws = sockets()
    ws.auth(token, last_event_id="999999")
    frame = ws.recv()
    assert frame["event"] == "resync" and "GET /jobs" in frame["data"]["reason"]


def test_open_sockets_per_user_are_capped(signed_in, sockets):
    _, token = signed_in("a@example.com")
    for _ in range(20):
        assert sockets().auth(token)["event"] == "ready"
    frame = sockets().auth(token)
    assert frame["event"] == "error" and frame["data"]["code"] == "TOO_MANY_SOCKETS"


def test_malformed_frames_get_an_error_frame_not_a_crash(signed_in, sockets):
    _, token = signed_in("a@example.com")
    ws = sockets()
    ws.auth(token)
    ws.ws.send("{not json")
    assert ws.recv()["data"]["code"] == "INVALID_JSON"
    ws.send("dance", 1)
    assert ws.recv()["data"]["code"] == "UNKNOWN_EVENT"
    ws.send("ping", 7)
    assert ws.recv() == {"event": "pong", "data": 7}


def test_events_published_while_the_server_lost_redis_reach_the_socket_after_it_resubscribes(
        signed_in, sockets, redis_url):
    import redis
    user, token = signed_in("a@example.com")
    ws = sockets()
    ws.auth(token)
    announce(user.id, "job.progress", progress=10)
    ws.recv_until("job:progress")
    # Cut the listeners' pub/sub connections on this run's Redis db (the web process's among them; not
    # the RQ workers', nor other runs' on the same server): they reconnect a second later, so this
    # event is published to nobody and exists only in the database meanwhile.
    control = redis.Redis.from_url(redis_url)
    run_db = control.connection_pool.connection_kwargs["db"]
    ours = [c["id"] for c in control.client_list(_type="pubsub")
            if c["name"].startswith("conveyor:") and int(c["db"]) == run_db]
    assert ours, "no listener to cut"
    for client_id in ours:
        control.client_kill_filter(_id=client_id)
    missed = announce(user.id, "job.completed", status="Completed", progress=100, result="r")
    frame, _ = ws.recv_until("job:completed")
    assert frame["id"] == str(missed)
    assert ws.nothing_for(0.5) == [], "nothing is sent twice"
