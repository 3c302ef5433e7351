"""Token movement writes its rows in batches: the cases where rows must exist before the batch ends."""
from tests.engine.helpers import Api, flow, model, task


def _fork_with_an_empty_branch():
    return model("forked", '<bpmn:startEvent id="s" /><bpmn:parallelGateway id="fork" />'
                 '<bpmn:parallelGateway id="join" /><bpmn:endEvent id="e" />' + task("a", "work")
                 + flow("f1", "s", "fork") + flow("f2", "fork", "a") + flow("f3", "fork", "join")
                 + flow("f4", "a", "join") + flow("f5", "join", "e"))


def test_a_branch_that_reaches_a_join_at_start_waits_there_until_the_task_completes(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(_fork_with_an_empty_branch())
    inst = api.start("forked")
    assert inst["state"] == "ACTIVE"
    detail = api.instance(inst["process_instance_id"])
    waiting = [e for e in detail["element_instances"] if e["element_id"] == "join"]
    assert [e["state"] for e in waiting] == ["ACTIVE"]
    job = api.activate("work")[0]
    status, body = api.complete(job["key"], {"x": 1})
    assert status == 200
    assert [a["element_id"] for a in body["data"]["process_continuation"]["next_activities"]] == ["join", "e"]
    detail = api.instance(inst["process_instance_id"])
    assert detail["state"] == "COMPLETED" and detail["variables"] == {"x": 1}
    assert all(e["state"] == "COMPLETED" for e in detail["element_instances"])


def test_two_instances_completed_in_a_row_keep_their_own_rows(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(_fork_with_an_empty_branch())
    first, second = api.start("forked"), api.start("forked")
    for job in api.activate("work", max_jobs=2):
        assert api.complete(job["key"])[0] == 200
    for inst in (first, second):
        detail = api.instance(inst["process_instance_id"])
        assert detail["state"] == "COMPLETED"
        assert sorted(e["element_id"] for e in detail["element_instances"]) == ["a", "e", "fork", "join", "join", "s"]


def test_a_cycle_of_gateways_without_a_wait_state_stops_at_the_step_limit_and_writes_nothing(app, client, key_headers):
    import pytest

    from app.engine import completion

    api = Api(client, key_headers)
    api.deploy(model("loop", '<bpmn:startEvent id="s" /><bpmn:exclusiveGateway id="g1" default="f4" />'
                     '<bpmn:exclusiveGateway id="g2" /><bpmn:endEvent id="e" />' + task("t", "work")
                     + flow("f1", "s", "t") + flow("f2", "t", "g1") + flow("f3", "g1", "g2", "again = true")
                     + flow("f4", "g1", "e") + flow("f5", "g2", "g1")))
    inst = api.start("loop")
    job = api.activate("work")[0]
    # The walk is a loop, not recursion: it ends at MAX_STEPS, not at Python's recursion limit.
    with pytest.raises(RuntimeError, match="loops without a wait state"):
        completion.complete(tenant="default", key=job["key"], worker="w1", variables={"again": True})
    assert api.job(job["key"])[1]["data"]["status"] == "ACTIVE"
    assert api.complete(job["key"], {"again": False})[0] == 200
    assert api.instance(inst["process_instance_id"])["state"] == "COMPLETED"
