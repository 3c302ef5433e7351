"""Completions committed together (PostgreSQL): one transaction, each request its own answer.

`completion.complete_together` is what the web process's committer runs for the completions that
queued while the last group was being committed; through the test client every completion is a
group of one. These tests give it real groups, and check that the outcome is what the same
completions would have had one after the other.
"""
import threading

import psycopg
import pytest
from sqlalchemy import func, select

from app.engine import activation, completion, deploy, instances
from app.engine.completion import Completion, complete_together
from app.engine.completion_queue import CompletionQueue
from app.engine.errors import InstanceBusy, JobNotCompletable, JobNotFound
from app.engine.models import Instance, Job, JobHistory
from app.extensions import db
from tests.engine.helpers import Api, flow, model, one_task, task
from tests.support import wait_until


@pytest.fixture(autouse=True)
def _postgres_only(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("group commit is PostgreSQL's completion path; SQLite completes one at a time")


def _jobs(tenant, job_type, count, worker="w"):
    jobs, _ = activation.activate_now(tenant=tenant, job_type=job_type, worker=worker, max_jobs=count,
                                      timeout_ms=60000)
    db.session.commit()
    assert len(jobs) == count
    return jobs


def _request(job, variables=None, tenant="t", worker=None):
    return Completion(tenant, job["key"], worker, variables or {}, None)


def test_a_group_completes_each_job_and_answers_each_request(app, client, key_headers):
    deploy.deploy(tenant="t", xml=one_task("p", "work"))
    started = [instances.start(tenant="t", process_id="p")["process_instance_id"] for _ in range(5)]
    jobs = _jobs("t", "work", 5)

    outcomes = complete_together([_request(job, {"n": i}) for i, job in enumerate(jobs)])

    assert [o["job_key"] for o in outcomes] == [j["key"] for j in jobs]
    assert all(o["status"] == "COMPLETED" and o["completed_by"] == "w" for o in outcomes)
    assert [o["result_variables"] for o in outcomes] == [{"n": i} for i in range(5)]
    assert [o["process_continuation"]["next_activities"] for o in outcomes] == [
        [{"element_id": "e", "element_type": "endEvent", "element_name": None}]] * 5
    for i, job in enumerate(jobs):
        inst = db.session.get(Instance, job["process_instance_id"])
        assert inst.state == "COMPLETED" and inst.variables == {"n": i}
    assert sorted(j["process_instance_id"] for j in jobs) == sorted(started)
    actions = db.session.scalars(select(JobHistory.action).where(JobHistory.action == "JOB_COMPLETED")).all()
    assert len(actions) == 5


def _fork_join():
    return model("fj", '<bpmn:startEvent id="s" /><bpmn:parallelGateway id="fork" />'
                 '<bpmn:parallelGateway id="join" /><bpmn:endEvent id="e" />'
                 + task("a", "left") + task("b", "right")
                 + flow("f1", "s", "fork") + flow("f2", "fork", "a") + flow("f3", "fork", "b")
                 + flow("f4", "a", "join") + flow("f5", "b", "join") + flow("f6", "join", "e"))


def _shape(api, instance_key):
    detail = api.instance(instance_key)
    elements = sorted((e["element_id"], e["state"]) for e in detail["element_instances"])
    return detail["state"], detail["variables"], elements


def test_both_branches_of_one_instance_in_one_group_pass_the_join_once(app, client, key_headers):
    api = Api(client, key_headers)
    deploy.deploy(tenant="default", xml=_fork_join())
    together = instances.start(tenant="default", process_id="fj")["process_instance_id"]
    apart = instances.start(tenant="default", process_id="fj")["process_instance_id"]
    left = {j["process_instance_id"]: j for j in _jobs("default", "left", 2)}
    right = {j["process_instance_id"]: j for j in _jobs("default", "right", 2)}

    grouped = complete_together([_request(left[together], {"l": 1}, "default"),
                                 _request(right[together], {"r": 2}, "default")])
    one = complete_together([_request(left[apart], {"l": 1}, "default")])
    two = complete_together([_request(right[apart], {"r": 2}, "default")])

    assert _shape(api, together) == _shape(api, apart)
    assert _shape(api, together)[:2] == ("COMPLETED", {"l": 1, "r": 2})
    continued = [[a["element_id"] for a in o["process_continuation"]["next_activities"]] for o in grouped]
    assert continued == [[a["element_id"] for a in o["process_continuation"]["next_activities"]]
                         for o in (one[0], two[0])] == [["join"], ["join", "e"]]
    assert grouped[1]["variables_updated"] == {"added": ["r"], "modified": [], "removed": []}


def test_requests_that_cannot_complete_get_their_own_error_and_the_rest_of_the_group_commits(app):
    deploy.deploy(tenant="t", xml=one_task("p", "work"))
    deploy.deploy(tenant="other", xml=one_task("p", "work"))
    for _ in range(3):
        instances.start(tenant="t", process_id="p")
    instances.start(tenant="other", process_id="p")
    first, second, third = _jobs("t", "work", 3)
    others = _jobs("other", "work", 1)

    outcomes = complete_together([
        _request(first),
        _request(first),                      # the same job again, in the same group
        _request(second, worker="somebody"),  # held by "w"
        _request(others[0]),                  # another tenant's job
        Completion("t", "no-such-job", None, {}, None),
        _request(third, worker="w"),
    ])

    assert outcomes[0]["status"] == "COMPLETED"
    assert isinstance(outcomes[1], JobNotCompletable) and outcomes[1].details["current_status"] == "COMPLETED"
    assert isinstance(outcomes[2], JobNotFound) and outcomes[2].details["reason"] == "Job belongs to different worker"
    assert isinstance(outcomes[3], JobNotFound) and isinstance(outcomes[4], JobNotFound)
    assert outcomes[5]["status"] == "COMPLETED"
    states = dict(db.session.execute(select(Job.key, Job.state)).all())
    assert states == {first["key"]: "COMPLETED", second["key"]: "ACTIVATED", third["key"]: "COMPLETED",
                      others[0]["key"]: "ACTIVATED"}


def _loops_when_asked():
    # After the task, "again" sends the token round two gateways for ever: a movement that fails.
    return model("loop", '<bpmn:startEvent id="s" /><bpmn:exclusiveGateway id="g1" default="f4" />'
                 '<bpmn:exclusiveGateway id="g2" /><bpmn:endEvent id="e" />' + task("t", "work")
                 + flow("f1", "s", "t") + flow("f2", "t", "g1") + flow("f3", "g1", "g2", "again = true")
                 + flow("f4", "g1", "e") + flow("f5", "g2", "g1"))


def test_a_completion_that_fails_fails_alone(app):
    deploy.deploy(tenant="t", xml=_loops_when_asked())
    for _ in range(3):
        instances.start(tenant="t", process_id="loop")
    good, bad, also_good = _jobs("t", "work", 3)

    outcomes = complete_together([_request(good, {"again": False}), _request(bad, {"again": True}),
                                  _request(also_good, {"again": False})])

    assert outcomes[0]["status"] == outcomes[2]["status"] == "COMPLETED"
    assert isinstance(outcomes[1], RuntimeError) and "loops without a wait state" in str(outcomes[1])
    states = dict(db.session.execute(select(Job.key, Job.state)).all())
    assert states == {good["key"]: "COMPLETED", bad["key"]: "ACTIVATED", also_good["key"]: "COMPLETED"}
    # The failed one left nothing half-written: its job can still be completed.
    assert complete_together([_request(bad, {"again": False})])[0]["status"] == "COMPLETED"


def _jobs_and_a_committer(count):
    """`count` activated jobs of one-task instances, and a committer in background mode (as in gunicorn)."""
    deploy.deploy(tenant="t", xml=one_task("p", "work"))
    for _ in range(count):
        instances.start(tenant="t", process_id="p")
    committer = CompletionQueue()
    committer.run_in_background()
    return _jobs("t", "work", count), committer


def test_the_committer_groups_completions_that_arrive_while_it_is_busy(app):
    """In background mode (gunicorn's web workers) completions queue for the committer: while it is
    held up (its instance locked by another connection), the rest wait and go in together."""
    jobs, committer = _jobs_and_a_committer(12)
    answers: dict = {}

    def submit(job):
        with app.app_context():
            answers[job["key"]] = committer.submit(_request(job, {"k": job["key"]}))

    blocker = psycopg.connect(app.config["SQLALCHEMY_DATABASE_URI"].replace("+psycopg", ""))
    try:
        blocker.execute("SELECT 1 FROM engine_instances WHERE key = %s FOR UPDATE", (jobs[0]["process_instance_id"],))
        threads = [threading.Thread(target=submit, args=(job,)) for job in jobs]
        threads[0].start()  # the committer takes it and waits for the lock
        wait_until(lambda: _lock_waiters(blocker) == 1, seconds=10, interval=0.01)
        for thread in threads[1:]:
            thread.start()
        wait_until(lambda: committer.pending.qsize() == 11, seconds=10, interval=0.01)
    finally:
        blocker.rollback()
        blocker.close()
    for thread in threads:
        thread.join(10)

    assert sorted(answers) == sorted(j["key"] for j in jobs)
    assert all(a["status"] == "COMPLETED" and a["result_variables"] == {"k": k} for k, a in answers.items())
    assert committer.completions == 12 and committer.groups == 2, committer.groups
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Job).where(Job.state == "COMPLETED")) == 12


def test_a_completion_whose_instance_stays_locked_answers_busy_and_holds_up_no_other(app):
    """One committer per process: a row held by a stuck transaction (an open psql session) would stop
    every completion of the process for as long as it lives. Past COMPLETION_LOCK_TIMEOUT_MS the held
    one answers 503 INSTANCE_BUSY, having changed nothing, and the others complete."""
    app.config["COMPLETION_LOCK_TIMEOUT_MS"] = 300
    jobs, committer = _jobs_and_a_committer(3)
    outcomes: dict = {}

    def submit(job):
        with app.app_context():
            try:
                outcomes[job["key"]] = committer.submit(_request(job))["status"]
            except Exception as exc:  # the answer under test
                outcomes[job["key"]] = exc

    blocker = psycopg.connect(app.config["SQLALCHEMY_DATABASE_URI"].replace("+psycopg", ""))
    try:
        blocker.execute("SELECT 1 FROM engine_instances WHERE key = %s FOR UPDATE", (jobs[0]["process_instance_id"],))
        threads = [threading.Thread(target=submit, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        held = outcomes[jobs[0]["key"]]
        assert isinstance(held, InstanceBusy) and held.status == 503 and held.headers == {"Retry-After": "1"}
        assert [outcomes[job["key"]] for job in jobs[1:]] == ["COMPLETED", "COMPLETED"]
    finally:
        blocker.rollback()
        blocker.close()
    db.session.rollback()
    assert db.session.get(Job, jobs[0]["key"]).state == "ACTIVATED"  # nothing of it was written
    submit(jobs[0])
    assert outcomes[jobs[0]["key"]] == "COMPLETED"


def test_a_committer_whose_connection_was_lost_completes_on_a_fresh_one(app, monkeypatch):
    """Each committer holds its connection for its life. When PostgreSQL drops it (a restart, an idle
    timeout, a terminated backend), the completion in hand is tried again on a new one: the worker
    never sees the lost connection."""
    jobs, committer = _jobs_and_a_committer(3)

    def submit(job):
        with app.app_context():
            return committer.submit(_request(job))

    # The connections this process opens from now on carry a name PostgreSQL shows (libpq reads it
    # from the environment), so that exactly those can be terminated.
    db.session.remove()
    db.engine.dispose()
    monkeypatch.setenv("PGAPPNAME", "conveyor-lost-committer")
    assert submit(jobs[0])["status"] == "COMPLETED"
    admin = psycopg.connect(app.config["SQLALCHEMY_DATABASE_URI"].replace("+psycopg", ""), autocommit=True,
                            application_name="conveyor-test-admin")
    try:
        held = [pid for (pid,) in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'conveyor-lost-committer'")]
        assert held
        for pid in held:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_until(lambda: not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", (held,))
                   .fetchall(), seconds=5, interval=0.05)
        monkeypatch.delenv("PGAPPNAME")
        db.engine.dispose()  # a pooled connection of this process may be among them
        assert [submit(job)["status"] for job in jobs[1:]] == ["COMPLETED", "COMPLETED"]
    finally:
        admin.close()
    assert db.session.scalar(select(func.count()).select_from(Job).where(Job.state == "COMPLETED")) == 3


def _lock_waiters(conn) -> int:
    return conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]


def test_completions_through_the_api_still_answer_as_before(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(one_task())
    api.start("one")
    job = api.activate("work")[0]
    assert completion.queue.background is False  # the test client: a group of one, in the request
    status, body = api.complete(job["key"], {"x": 1})
    assert status == 200 and body["data"]["variables_updated"]["added"] == ["x"]
    status, body = api.complete(job["key"], {"x": 1})
    assert status == 409 and body["error"]["details"]["current_status"] == "COMPLETED"


def test_groups_racing_for_the_same_jobs_complete_each_job_once(app):
    """Two transactions claiming the same two jobs in opposite orders may deadlock; PostgreSQL then
    aborts one, whose completions are retried one at a time. Either way each job completes once."""
    deploy.deploy(tenant="t", xml=one_task("p", "work"))
    for _ in range(2):
        instances.start(tenant="t", process_id="p")
    first, second = _jobs("t", "work", 2)
    start = threading.Barrier(2)
    outcomes: dict = {}

    def group(name, jobs):
        with app.app_context():
            start.wait()
            outcomes[name] = complete_together([_request(job) for job in jobs])

    threads = [threading.Thread(target=group, args=("ab", [first, second])),
               threading.Thread(target=group, args=("ba", [second, first]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    by_job = {first["key"]: [outcomes["ab"][0], outcomes["ba"][1]],
              second["key"]: [outcomes["ab"][1], outcomes["ba"][0]]}
    for key, answers in by_job.items():
        done = [a for a in answers if isinstance(a, dict)]
        refused = [a for a in answers if isinstance(a, JobNotCompletable)]
        assert len(done) == 1 and done[0]["job_key"] == key, answers
        assert len(refused) == 1 and refused[0].details["current_status"] == "COMPLETED", answers
    db.session.rollback()
    history = db.session.scalars(select(JobHistory.job_key).where(JobHistory.action == "JOB_COMPLETED")).all()
    assert sorted(history) == sorted(by_job)
