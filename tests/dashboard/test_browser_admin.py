"""In a real browser: create a webhook (secret shown once); deploy a BPMN file and watch a worker's job
complete on the Workers page without a reload."""
import os
import re

import pytest
import requests

from tests.dashboard.conftest import assert_accessible

pytestmark = pytest.mark.slow
BPMN = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "bpmn", "one-task.bpmn")


def test_creating_a_webhook_shows_its_secret_once_and_lists_it(page, signed_in_page):
    signed_in_page()
    page.goto("/dashboard/webhooks")
    assert_accessible(page)
    page.get_by_label("URL").fill("http://127.0.0.1:9/conveyor-hook")
    page.get_by_label("Events").select_option("completed")
    page.get_by_label("Description").fill("ops pager")
    with page.expect_navigation():
        page.get_by_role("button", name="Add webhook").click()
    secret = page.locator("[data-role=secret]").input_value()
    assert secret.startswith("whsec_")
    assert_accessible(page)
    page.screenshot_to("webhook-created")
    page.get_by_role("link", name=re.compile("conveyor-hook")).click()
    page.get_by_role("heading", name="Deliveries").wait_for()
    assert secret not in page.content()
    assert_accessible(page)
    page.screenshot_to("webhook-detail")


def test_a_deployed_process_runs_a_worker_job_that_completes_live_on_the_workers_page(
        page, signed_in_page, live_server, make_key):
    key = {"X-API-Key": make_key("job")}  # before the browser writes: this process holds no stale snapshot then
    signed_in_page(admin=True, email="admin@example.com")
    page.goto("/dashboard/workers")
    assert_accessible(page)
    page.get_by_label("BPMN file").set_input_files(BPMN)
    with page.expect_navigation():
        page.get_by_role("button", name="Deploy").click()
    page.locator("text=Deployed “welcome-email” version 1.").wait_for()
    with page.expect_navigation():
        page.get_by_role("button", name="Start instance").click()
    page.locator("text=Started instance").wait_for()
    page.locator('#workers-live[data-live="on"]').wait_for()
    assert page.locator("#workers-types tr[data-type=email-service] td").nth(1).inner_text() == "1"  # backlog
    page.evaluate("window.__sameDocument = true")

    res = requests.post(f"{live_server}/api/v1/jobs/activate", headers=key, timeout=30,
                        json={"type": "email-service", "worker": "mailer-1", "max_jobs": 1, "request_timeout": 0})
    job = res.json()["data"]["jobs"][0]
    res = requests.put(f"{live_server}/api/v1/jobs/{job['key']}/complete", headers=key, timeout=30,
                       json={"variables": {"sent": True}})
    assert res.status_code == 200, res.text

    row = page.locator(f'#workers-recent tr[data-job-key="{job["key"]}"]')
    row.locator(".badge:text-is('COMPLETED')").wait_for(timeout=20_000)
    page.locator("#workers-instances .badge:text-is('COMPLETED')").wait_for()
    page.locator("#workers-types >> text=mailer-1").wait_for()
    assert page.locator("#throughput-chart").get_attribute("data-completed") == "1"  # re-read from the database
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    row.locator("summary").click()
    assert "JOB_COMPLETED" in row.inner_text()
    assert_accessible(page)
    page.screenshot_to("workers-job-completed")
