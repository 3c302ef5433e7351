from tests.engine.helpers import Api, one_task


def test_the_job_list_filters_and_pages_with_a_cursor(client, key_headers, make_key):
    api = Api(client, key_headers)
    api.deploy(one_task("a", "alpha"))
    api.deploy(one_task("b", "beta"))
    for _ in range(5):
        api.start("a")
    beta = api.start("b")
    taken = api.activate("alpha", worker="w-list", max_jobs=2)
    seen, cursor = [], None
    while True:
        status, body = api.call("get", "/api/v1/jobs?type=alpha&limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, body
        seen += [j["key"] for j in body["data"]["jobs"]]
        cursor = body["data"]["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 5
    _, body = api.call("get", "/api/v1/jobs?status=ACTIVE&worker=w-list")
    assert sorted(j["key"] for j in body["data"]["jobs"]) == sorted(j["key"] for j in taken)
    _, body = api.call("get", f"/api/v1/jobs?process_instance_id={beta['process_instance_id']}")
    assert [j["type"] for j in body["data"]["jobs"]] == ["beta"]
    status, body = api.call("get", "/api/v1/jobs?status=BOGUS")
    assert status == 400 and "status" in body["error"]["details"]["field_errors"]
    status, body = api.call("get", "/api/v1/jobs?cursor=!!!")
    assert status == 400
    other = Api(client, {"X-API-Key": make_key("job", tenant="elsewhere")})
    assert other.call("get", "/api/v1/jobs")[1]["data"]["jobs"] == []


def test_stats_report_backlog_in_flight_backoff_incidents_and_workers(client, key_headers):
    api = Api(client, key_headers)
    api.deploy(one_task(retries=1))
    for _ in range(4):
        api.start("one")
    first, second, third = api.activate("work", worker="w-a", max_jobs=3)
    api.complete(first["key"])
    api.call("put", f"/api/v1/jobs/{second['key']}/fail", json={"retries": 0, "error_message": "x"})
    status, body = api.call("get", "/api/v1/jobs/stats")
    assert status == 200, body
    [work] = body["data"]["types"]
    assert work["counts"]["COMPLETED"] == 1 and work["counts"]["FAILED"] == 1 and work["counts"]["ACTIVE"] == 1
    assert work["backlog"] == 1 and work["oldest_backlog_age_ms"] >= 0
    assert work["in_flight"] == 1 and work["in_backoff"] == 0 and work["open_incidents"] == 1
    assert work["completions_per_minute"] == 0.2
    assert work["mean_processing_ms"] is not None and work["mean_activation_wait_ms"] is not None
    assert "w-a" in [w["worker"] for w in work["workers"]]  # last polls live in Redis, shared by the run
    assert third["key"]
