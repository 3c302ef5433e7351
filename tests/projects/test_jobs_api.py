"""Project jobs through HTTP, run by a real RQ worker process, with real CSV and XLSX files."""
import csv
import io

import openpyxl
import pytest

from tests.projects.conftest import csv_bytes, upload, wait_for

GOOD = [
    ("FT-100", "Feed flow", "AI", "m3/h", 0, 120, 300),
    ("PT-101", "Feed pressure", "AI", "bar", 0, 16, 300),
    ("TT-102", "Feed temperature", "AI", "degC", -20, 150, 300),
    ("XV-103", "Feed valve", "DO", "", "", "", 400),
]
BAD = [
    ("", "No tag here", "AI", "bar", 0, 10, 300),                 # missing key
    ("LT-104", "Too many values", "AI", "%", 0, 100, 300, "extra"),  # beyond the header
]


@pytest.fixture(autouse=True)
def _worker(rq_worker):
    return rq_worker


def _import(client, owner, project, rows, **kw):
    res = upload(client, owner["headers"], project["id"], csv_bytes(rows), **kw)
    assert res.status_code == 202, res.get_json()
    return wait_for(client, owner["headers"], res.get_json()["id"])


def test_starting_an_import_answers_202_with_the_queued_job_in_the_spec_shape(client, owner, make_project):
    project = make_project()
    res = upload(client, owner["headers"], project["id"], csv_bytes(GOOD))
    assert res.status_code == 202
    job = res.get_json()
    assert set(job) == {"id", "type", "projectId", "projectName", "status", "progress", "result", "error",
                        "createdAt", "startedAt", "completedAt", "createdBy", "createdByName"}
    assert (job["type"], job["status"], job["progress"]) == ("Import", "Queued", 0)
    assert (job["projectId"], job["projectName"]) == (project["id"], "Plant A Commissioning")
    assert job["createdByName"] == "Olivia Owner" and job["createdBy"] == str(owner["id"])
    assert job["createdAt"].endswith("Z")


def test_a_csv_import_creates_good_rows_reports_bad_ones_and_updates_by_key(client, owner, make_project):
    project = make_project()
    job = _import(client, owner, project, GOOD + BAD)
    assert job["status"] == "Completed", job
    assert job["progress"] == 100 and job["startedAt"] and job["completedAt"]
    result = job["result"]
    assert (result["recordsProcessed"], result["recordsCreated"], result["recordsUpdated"], result["errors"]) == \
        (6, 4, 0, 2)
    assert [(e["line"], e["field"]) for e in result["errorDetails"]] == [(6, "tag"), (7, None)]
    records = client.get(f"/api/projects/{project['id']}/records", headers=owner["headers"]).get_json()
    assert records["total"] == 4
    assert records["records"][0]["data"] == {"tag": "FT-100", "description": "Feed flow", "type": "AI",
                                             "unit": "m3/h", "range_low": 0, "range_high": 120, "area": 300}
    changed = [GOOD[0], ("PT-101", "Feed pressure", "AI", "bar", 0, 25, 300), ("PT-200", "New", "AI", "bar", 0, 1, 1)]
    again = _import(client, owner, project, changed)["result"]
    assert (again["recordsCreated"], again["recordsUpdated"], again["recordsUnchanged"]) == (1, 1, 1)
    page = client.get(f"/api/projects/{project['id']}/records?limit=2", headers=owner["headers"]).get_json()
    assert [r["key"] for r in page["records"]] == ["FT-100", "PT-101"] and page["total"] == 5
    rest = client.get(f"/api/projects/{project['id']}/records?limit=10&after={page['nextAfter']}",
                      headers=owner["headers"]).get_json()
    assert [r["key"] for r in rest["records"]] == ["PT-200", "TT-102", "XV-103"] and rest["nextAfter"] is None


def test_an_xlsx_import_with_a_key_field_reads_the_first_sheet(client, owner, make_project):
    project = make_project()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["code", "description", "range_high"])
    sheet.append(["A-1", "first", 10])
    sheet.append([None, "no code", 5])
    sheet.append(["A-2", "second", 2.5])
    buf = io.BytesIO()
    book.save(buf)
    res = upload(client, owner["headers"], project["id"], buf.getvalue(), filename="tags.xlsx", key_field="code")
    job = wait_for(client, owner["headers"], res.get_json()["id"])
    assert job["status"] == "Completed", job
    assert (job["result"]["recordsCreated"], job["result"]["errors"]) == (2, 1)
    records = client.get(f"/api/projects/{project['id']}/records", headers=owner["headers"]).get_json()["records"]
    assert [r["data"] for r in records] == [{"code": "A-1", "description": "first", "range_high": 10},
                                            {"code": "A-2", "description": "second", "range_high": 2.5}]


def test_an_unreadable_file_fails_the_import_with_its_reason_and_changes_nothing(client, owner, make_project):
    project = make_project()
    _import(client, owner, project, GOOD)
    res = upload(client, owner["headers"], project["id"], b"name,unit\nx,bar\n")
    job = wait_for(client, owner["headers"], res.get_json()["id"])
    assert job["status"] == "Failed" and "no 'tag' column" in job["error"]
    assert client.get(f"/api/projects/{project['id']}/records", headers=owner["headers"]).get_json()["total"] == 4


def test_exports_in_csv_and_xlsx_read_back_equal_the_records(client, owner, make_project):
    project = make_project()
    _import(client, owner, project, GOOD)
    res = client.post(f"/api/projects/{project['id']}/exports", json={"format": "csv"}, headers=owner["headers"])
    assert res.status_code == 202
    job = wait_for(client, owner["headers"], res.get_json()["id"])
    assert job["status"] == "Completed" and job["result"]["recordsExported"] == 4
    got = client.get(f"/api/jobs/{job['id']}/download", headers=owner["headers"])
    assert got.status_code == 200 and "attachment" in got.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(got.data.decode("utf-8-sig"))))
    assert [tuple(r.values()) for r in rows] == [tuple("" if v == "" else str(v) for v in g) for g in GOOD]
    res = client.post(f"/api/projects/{project['id']}/exports", json={"format": "xlsx"}, headers=owner["headers"])
    job = wait_for(client, owner["headers"], res.get_json()["id"])
    book = openpyxl.load_workbook(io.BytesIO(client.get(f"/api/jobs/{job['id']}/download",
                                                        headers=owner["headers"]).data))
    values = list(book.active.iter_rows(values_only=True))
    assert values[0] == ("tag", "description", "type", "unit", "range_low", "range_high", "area")
    assert values[1] == GOOD[0] and values[4][:3] == ("XV-103", "Feed valve", "DO")


def test_an_export_format_other_than_csv_or_xlsx_answers_400(client, owner, make_project):
    project = make_project()
    res = client.post(f"/api/projects/{project['id']}/exports", json={"format": "pdf"}, headers=owner["headers"])
    assert res.status_code == 400 and res.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_a_validation_run_counts_violations_per_rule(client, owner, make_project):
    project = make_project()
    _import(client, owner, project, GOOD)
    base = f"/api/projects/{project['id']}/rules"
    for rule in ({"kind": "required", "field": "unit"},
                 {"kind": "pattern", "field": "tag", "params": {"regex": "[A-Z]{2}-[0-9]{3}"}},
                 {"kind": "range", "field": "range_high", "params": {"min": 0, "max": 100}},
                 {"kind": "allowed", "field": "type", "params": {"values": ["AI", "AO"]}}):
        assert client.post(base, json=rule, headers=owner["headers"]).status_code == 201
    bad = client.post(base, json={"kind": "range", "field": "x", "params": {"min": 5, "max": 1}},
                      headers=owner["headers"])
    assert bad.status_code == 400 and "params.max" in bad.get_json()["error"]["details"]["field_errors"]
    res = client.post(f"/api/projects/{project['id']}/validations", headers=owner["headers"])
    job = wait_for(client, owner["headers"], res.get_json()["id"])
    assert job["status"] == "Completed", job
    result = job["result"]
    assert result["recordsChecked"] == 4
    assert [r["violations"] for r in result["rules"]] == [1, 0, 2, 1]
    assert {(f["key"], f["field"]) for f in result["findings"]} == {
        ("XV-103", "unit"), ("FT-100", "range_high"), ("TT-102", "range_high"), ("XV-103", "type")}


def test_a_test_run_reports_pass_and_fail_per_scenario_and_assertion(client, owner, make_project):
    project = make_project()
    _import(client, owner, project, GOOD)
    base = f"/api/projects/{project['id']}/scenarios"
    passing = client.post(base, json={"name": "Area 300 is complete", "assertions": [
        {"kind": "count", "where": {"area": 300}, "value": 3},
        {"kind": "all_have", "where": {"type": "AI"}, "field": "range_high"}]}, headers=owner["headers"]).get_json()
    failing = client.post(base, json={"name": "Everything has a unit", "assertions": [
        {"kind": "all_have", "field": "unit"}]}, headers=owner["headers"]).get_json()
    res = client.post(f"/api/projects/{project['id']}/test-runs", json={}, headers=owner["headers"])
    result = wait_for(client, owner["headers"], res.get_json()["id"])["result"]
    assert [(s["name"], s["passed"]) for s in result["scenarios"]] == [("Area 300 is complete", True),
                                                                       ("Everything has a unit", False)]
    assert "XV-103" in result["scenarios"][1]["assertions"][0]["detail"]
    res = client.post(f"/api/projects/{project['id']}/test-runs", json={"scenario_ids": [failing["id"]]},
                      headers=owner["headers"])
    only = wait_for(client, owner["headers"], res.get_json()["id"])["result"]
    assert [s["id"] for s in only["scenarios"]] == [failing["id"]] and (only["passed"], only["failed"]) == (0, 1)
    missing = client.post(f"/api/projects/{project['id']}/test-runs", json={"scenario_ids": [passing["id"] + 99]},
                          headers=owner["headers"])
    assert missing.status_code == 400
    beyond = [passing["id"], -997, 2**31, 17246978000]  # ids PostgreSQL refuses in a query: no such scenario
    res = client.post(f"/api/projects/{project['id']}/test-runs", json={"scenario_ids": beyond}, headers=owner["headers"])
    assert res.status_code == 400, res.get_json()
    assert res.get_json()["error"]["details"]["field_errors"]["scenario_ids"] == \
        "No such scenario in this project: [-997, 2147483648, 17246978000]"


def test_job_lists_filter_by_status_and_statistics_count_each_status(client, owner, make_project):
    project = make_project()
    _import(client, owner, project, GOOD)
    bad = upload(client, owner["headers"], project["id"], b"name\nx\n").get_json()
    wait_for(client, owner["headers"], bad["id"])
    h = owner["headers"]
    assert [j["status"] for j in client.get(f"/api/jobs/projects/{project['id']}", headers=h).get_json()] == \
        ["Failed", "Completed"]
    failed = client.get("/api/jobs?status=Failed", headers=h).get_json()
    assert [j["id"] for j in failed] == [bad["id"]]
    assert client.get("/api/jobs?status=Bogus", headers=h).status_code == 400
    stats = client.get(f"/api/jobs/projects/{project['id']}/stats", headers=h).get_json()
    assert stats == {"total": 2, "queued": 0, "running": 0, "completed": 1, "failed": 1, "cancelled": 0}


def test_cancel_of_a_finished_job_and_retry_of_a_completed_one_answer_409(client, owner, make_project):
    project = make_project()
    job = _import(client, owner, project, GOOD)
    res = client.post(f"/api/jobs/{job['id']}/cancel", headers=owner["headers"])
    assert res.status_code == 409 and res.get_json()["error"]["details"]["status"] == "Completed"
    res = client.post(f"/api/jobs/{job['id']}/retry", headers=owner["headers"])
    assert res.status_code == 409 and res.get_json()["error"]["code"] == "JOB_STATE_CONFLICT"


def test_retrying_a_failed_job_resets_it_as_the_spec_shows_and_runs_it_again(client, owner, make_project):
    project = make_project()
    job = wait_for(client, owner["headers"],
                   upload(client, owner["headers"], project["id"], b"name\nx\n").get_json()["id"])
    assert job["status"] == "Failed"
    res = client.post(f"/api/jobs/{job['id']}/retry", headers=owner["headers"])
    assert res.status_code == 200
    body = res.get_json()
    assert {k: body[k] for k in ("id", "status", "progress", "error", "startedAt", "completedAt")} == \
        {"id": job["id"], "status": "Queued", "progress": 0, "error": None, "startedAt": None, "completedAt": None}
    again = wait_for(client, owner["headers"], job["id"])
    assert again["status"] == "Failed" and again["completedAt"] != job["completedAt"]


def test_every_change_is_an_event_carrying_the_job_its_project_and_its_creator(app, client, owner, make_project):
    from app.notify.events import Event
    project = make_project()
    job = _import(client, owner, project, GOOD)
    events = Event.query.filter_by(subject=job["id"]).order_by(Event.id).all()
    types = [e.type for e in events]
    assert types[0] == "job.created" and types[1] == "job.started" and types[-1] == "job.completed"
    assert set(types) <= {"job.created", "job.started", "job.progress", "job.completed"}
    last = events[-1]
    assert last.user_id == owner["id"]
    assert last.payload["projectName"] == "Plant A Commissioning" and last.payload["status"] == "Completed"


def test_someone_elses_project_and_jobs_answer_404_until_they_are_a_member(client, owner, make_project,
                                                                           make_user, login):
    project = make_project()
    job = _import(client, owner, project, GOOD)
    other = make_user(email="other@example.com", name="Other")
    h = {"Authorization": f"Bearer {login(other)['access_token']}"}
    for path in (f"/api/projects/{project['id']}", f"/api/projects/{project['id']}/records",
                 f"/api/jobs/{job['id']}", f"/api/jobs/projects/{project['id']}/stats"):
        res = client.get(path, headers=h)
        assert res.status_code == 404 and "error" in res.get_json(), path
    assert client.post(f"/api/jobs/{job['id']}/cancel", headers=h).status_code == 404
    assert client.post(f"/api/projects/{project['id']}/validations", headers=h).status_code == 404
    assert client.get("/api/jobs", headers=h).get_json() == []
    added = client.post(f"/api/projects/{project['id']}/members", json={"email": "other@example.com"},
                        headers=owner["headers"])
    assert added.status_code == 201 and added.get_json()["role"] == "member"
    assert client.get(f"/api/jobs/{job['id']}", headers=h).status_code == 200
    assert client.post(f"/api/projects/{project['id']}/members", json={"email": "owner@example.com"},
                       headers=h).status_code == 403
    members = client.get(f"/api/projects/{project['id']}/members", headers=h).get_json()
    assert [(m["email"], m["role"]) for m in members] == [("owner@example.com", "owner"), ("other@example.com", "member")]
    removed = client.delete(f"/api/projects/{project['id']}/members/{other.id}", headers=owner["headers"])
    assert removed.status_code == 204
    assert client.get(f"/api/projects/{project['id']}", headers=h).status_code == 404


def test_an_upload_over_the_cap_answers_413_and_no_job_is_created(app, client, owner, make_project):
    project = make_project()
    app.config["MAX_CONTENT_LENGTH"] = app.config["UPLOAD_MAX_BYTES"] = 1000
    res = upload(client, owner["headers"], project["id"], b"tag\n" + b"x" * 5000 + b"\n")
    assert res.status_code == 413 and res.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert client.get("/api/jobs", headers=owner["headers"]).get_json() == []


def test_project_routes_require_a_user_token(client):
    res = client.get("/api/jobs")
    assert res.status_code == 401 and res.get_json()["error"]["code"] == "UNAUTHORIZED"
