"""Every page: 200 and valid HTML for its owner, 404 for someone else, a redirect to sign in when signed out."""
import io
import os
import time

import pytest

from tests.dashboard.conftest import assert_valid_html

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "bpmn")
CSV = b"tag,area,type\nTT-100,300,AI\nTT-101,300,AO\nTT-102,310,AI\n"


@pytest.fixture
def world(client, make_user, sign_in):
    """An owner with a project, an import job, a webhook; an intruder with nothing."""
    owner = make_user(email="owner@example.com")
    intruder = make_user(email="intruder@example.com")
    sign_in(owner)
    res = client.post("/dashboard/projects", data={"name": "Plant A", "key_field": "tag", "description": "Pumps"})
    assert res.status_code == 303
    project_id = res.headers["Location"].rsplit("/", 1)[1]
    res = client.post(f"/dashboard/projects/{project_id}/import", data={"file": (io.BytesIO(CSV), "tags.csv")},
                      headers={"Accept": "application/json"})
    assert res.status_code == 202, res.get_data(as_text=True)
    job_id = res.get_json()["jobId"]
    res = client.post("/dashboard/webhooks", data={"url": "http://127.0.0.1:9/hook", "eventType": "all"})
    assert res.status_code == 201, res.get_data(as_text=True)[:2000]
    webhook_id = res.get_data(as_text=True).split('href="/dashboard/webhooks/')[1].split('"')[0]
    client.post(f"/dashboard/webhooks/{webhook_id}/active", data={"active": "0"})  # no deliveries to a dead port
    yield {"owner": owner, "intruder": intruder, "project": project_id, "job": job_id, "webhook": webhook_id}
    _settle(client, owner)


def _settle(client, owner):
    """Leave no job running when a worker is about: the next test's table truncation must not meet it."""
    client.post("/dashboard/logout")
    client.post("/dashboard/login", data={"email": owner.email, "password": owner.password})
    client.post("/dashboard/jobs/bulk", data={"action": "cancel", "scope": "filter"})
    for _ in range(100):
        html = client.get("/dashboard/jobs").get_data(as_text=True)
        if "Queued <b>0</b>" in html and "Running <b>0</b>" in html:
            return
        time.sleep(0.1)


def _pages(w):
    return [f"/dashboard/projects/{w['project']}", f"/dashboard/jobs/{w['job']}", f"/dashboard/webhooks/{w['webhook']}"]


def test_every_page_answers_200_with_valid_html_for_its_owner(world, page_ok):
    for url in ["/dashboard/jobs", "/dashboard/projects", "/dashboard/webhooks"] + _pages(world):
        page_ok(url)


def test_someone_elses_project_job_and_webhook_answer_404_as_an_html_page(world, client, sign_in):
    client.post("/dashboard/logout")
    sign_in(world["intruder"])
    for url in _pages(world):
        res = client.get(url)
        assert res.status_code == 404, url
        assert_valid_html(res.get_data(as_text=True))
    assert "Plant A" not in client.get("/dashboard/jobs").get_data(as_text=True)
    assert client.post(f"/dashboard/jobs/{world['job']}/cancel").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in_from_every_page(world, client):
    client.post("/dashboard/logout")
    for url in ["/", "/dashboard/jobs", "/dashboard/projects", "/dashboard/webhooks", "/dashboard/workers",
                "/dashboard/keys"] + _pages(world):
        res = client.get(url, follow_redirects=url == "/")
        if url == "/":
            assert res.request.path == "/dashboard/login"
        else:
            assert res.status_code == 302 and "/dashboard/login" in res.headers["Location"], url


def test_admin_pages_are_not_found_for_other_users(world, client):
    assert client.get("/dashboard/workers").status_code == 404
    assert client.get("/dashboard/keys").status_code == 404


def test_the_workers_page_deploys_a_bpmn_file_and_starts_an_instance(client, make_user, sign_in, page_ok):
    sign_in(make_user(admin=True))
    assert "No worker jobs yet" in page_ok("/dashboard/workers")
    with open(os.path.join(FIXTURES, "one-task.bpmn"), "rb") as f:
        res = client.post("/dashboard/workers/processes", data={"file": (f, "one-task.bpmn")}, follow_redirects=True)
    html = res.get_data(as_text=True)
    assert "Deployed “welcome-email” version 1" in html
    res = client.post("/dashboard/workers/instances", data={"process_id": "welcome-email", "variables": '{"a": 1}'},
                      follow_redirects=True)
    html = res.get_data(as_text=True)
    assert "Started instance" in html and "email-service" in html
    assert_valid_html(html)


def test_a_broken_bpmn_file_is_refused_in_the_page(client, make_user, sign_in):
    sign_in(make_user(admin=True))
    res = client.post("/dashboard/workers/processes", data={"file": (io.BytesIO(b"<nope"), "x.bpmn")},
                      follow_redirects=True)
    assert res.status_code == 200 and "Not deployed" in res.get_data(as_text=True)


def test_the_job_page_shows_the_timeline_and_parameters(world, page_ok):
    html = page_ok(f"/dashboard/jobs/{world['job']}")
    assert "Import job" in html and "Created" in html and "fileName=tags.csv" in html and "Outcome" in html


def test_the_jobs_list_filters_by_status_type_and_project(world, page_ok):
    assert world["job"] in page_ok(f"/dashboard/jobs?type=Import&project={world['project']}")
    assert world["job"] not in page_ok("/dashboard/jobs?type=Export")
    html = page_ok("/dashboard/jobs?status=Cancelled")
    assert world["job"] not in html and "No jobs match these filters" in html


def _long_job(user) -> str:
    """A 200-second example job, started as the API would start it (Queued, or Running if a worker is about)."""
    from app.dbsetup import immediate
    from app.extensions import db
    from app.projects import jobs

    db.session.rollback()
    with immediate():
        return jobs.start_job(name="dataProcessing", user=user, params={"steps": 100, "stepMs": 2000}).id


def _wait_for_status(client, job_id, status):
    for _ in range(100):
        if f'data-role="status">{status}<' in client.get(f"/dashboard/jobs/{job_id}").get_data(as_text=True):
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never became {status}")


def test_bulk_cancel_of_all_matching_jobs_and_retry_of_selected_ones(world, client, page_ok):
    job_id = _long_job(world["owner"])  # Queued, or Running when a worker is about: cancellable either way
    res = client.post("/dashboard/jobs/bulk", follow_redirects=True,
                      data={"action": "cancel", "scope": "filter", "type": "dataProcessing"})
    assert "1 job(s) cancelled." in res.get_data(as_text=True)
    _wait_for_status(client, job_id, "Cancelled")
    res = client.post("/dashboard/jobs/bulk", data={"action": "retry", "ids": [job_id]}, follow_redirects=True)
    assert "1 job(s) queued again." in res.get_data(as_text=True)
    res = client.post("/dashboard/jobs/bulk", data={"action": "retry", "ids": [job_id]}, follow_redirects=True)
    assert "0 job(s) queued again. 1 could not be retried" in res.get_data(as_text=True)


def test_rules_and_scenarios_are_added_edited_and_refused_with_a_reason(world, client, page_ok):
    base = f"/dashboard/projects/{world['project']}"
    res = client.post(f"{base}/rules", data={"kind": "pattern", "field": "tag", "params": '{"regex": "TT-[0-9]+"}'},
                      follow_redirects=True)
    assert "Rule added." in res.get_data(as_text=True)
    res = client.post(f"{base}/rules", data={"kind": "pattern", "field": "tag", "params": "{not json"},
                      follow_redirects=True)
    assert "Rule not added: params: Not valid JSON" in res.get_data(as_text=True)
    res = client.post(f"{base}/scenarios", follow_redirects=True,
                      data={"name": "enough", "assertions": '[{"kind": "count", "op": "ge", "value": 1}]'})
    html = res.get_data(as_text=True)
    assert "Scenario added." in html and "Run 1 test scenario" in html and "Validate against 1 rule" in html
    page_ok(base)


def test_webhooks_are_edited_disabled_and_deleted(world, client, page_ok):
    url = f"/dashboard/webhooks/{world['webhook']}"
    res = client.post(url, data={"url": "http://127.0.0.1:9/other", "eventType": "completed"}, follow_redirects=True)
    assert "Webhook saved." in res.get_data(as_text=True) and "/other" in res.get_data(as_text=True)
    res = client.post(f"{url}/active", data={"active": "0"}, follow_redirects=True)
    assert "Webhook disabled" in res.get_data(as_text=True)
    res = client.post(url, data={"url": "ftp://nope"}, follow_redirects=True)
    assert res.status_code == 400 and 'aria-invalid="true"' in res.get_data(as_text=True)
    assert client.post(f"{url}/delete", follow_redirects=True).status_code == 200
    assert client.get(url).status_code == 404
