"""In a real browser, against gunicorn and a forking RQ worker: live progress, cancel and retry."""
import re

import pytest
import requests

from tests.dashboard.conftest import api_token, assert_accessible, wait_for_socket

pytestmark = pytest.mark.slow
ROWS = 120_000


def _big_csv(path) -> str:
    with open(path, "w") as f:
        f.write("tag,area,type,range_high\n")
        for i in range(ROWS):
            f.write(f"TT-{i:06d},{300 + i % 7},{'AI' if i % 2 else 'AO'},{i % 250}\n")
        f.write(",301,AI,5\n")  # a row without its key: reported, not imported
    return str(path)


def _submit(live_server, token, **data) -> str:
    res = requests.post(f"{live_server}/submit-job", json={"name": "dataProcessing", "data": data},
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert res.status_code == 202, res.text
    return res.json()["jobId"]


def test_an_import_shows_its_progress_bar_moving_to_100_without_a_reload(page, signed_in_page, rq_worker, tmp_path):
    signed_in_page()
    page.goto("/dashboard/projects")
    assert_accessible(page)
    page.get_by_label("Name").fill("Plant A commissioning")
    with page.expect_navigation(url=re.compile(r"/dashboard/projects/[0-9a-f-]+$")):
        page.get_by_role("button", name="Create project").click()
    assert_accessible(page)
    wait_for_socket(page)
    page.evaluate("""() => {
        window.__sameDocument = true;
        window.__seen = [];
        const bar = document.querySelector('#import-progress [data-role=progress]');
        new MutationObserver(() => window.__seen.push(Number(bar.getAttribute('aria-valuenow'))))
            .observe(bar, {attributes: true, attributeFilter: ['aria-valuenow']});
    }""")
    page.get_by_label("CSV or XLSX file").set_input_files(_big_csv(tmp_path / "tags.csv"))
    page.get_by_role("button", name="Upload and import").click()
    box = page.locator("#import-progress")
    box.locator('[data-role=status]:text("Completed")').wait_for(timeout=90_000)
    page.locator("#import-progress .pct:text('100 %')").wait_for()
    outcome = box.locator("[data-role=outcome]")
    outcome.locator("text=Imported").wait_for()
    assert f"{ROWS + 1} rows: {ROWS} created" in outcome.inner_text()
    assert "1 with errors" in outcome.inner_text()
    seen = page.evaluate("window.__seen")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    assert any(0 < v < 100 for v in seen) and seen[-1] == 100, f"the bar did not move through: {seen}"
    page.locator("#project-records >> text=TT-000000").wait_for()  # the records table was refreshed in place
    page.screenshot_to("project-import-done")
    page.get_by_role("link", name=re.compile(r"^job ")).click()
    page.locator("text=rows with errors").wait_for()
    assert "the key field 'tag' is empty" in page.content()
    assert_accessible(page)
    page.screenshot_to("job-import-result")


def test_a_long_job_is_cancelled_from_the_jobs_list(page, signed_in_page, live_server, rq_worker):
    user = signed_in_page()
    job_id = _submit(live_server, api_token(live_server, user), rows=100, steps=100, stepMs=300)
    page.goto("/dashboard/jobs")
    wait_for_socket(page)
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    row.locator('[data-role=status]:text("Running")').wait_for(timeout=60_000)
    page.wait_for_function(f"""() => Number(document.querySelector('tr[data-job-id="{job_id}"] [data-role=progress]')
                                     .getAttribute('aria-valuenow')) > 0""", timeout=60_000)
    assert_accessible(page)
    page.screenshot_to("jobs-running")
    with page.expect_navigation():
        row.get_by_role("button", name=re.compile("^Cancel")).click()
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    row.locator('[data-role=status]:text("Cancelled")').wait_for(timeout=15_000)
    assert row.get_by_role("button", name=re.compile("^Retry")).is_visible()
    page.screenshot_to("jobs-cancelled")


def test_a_failed_job_is_retried_from_the_jobs_list(page, signed_in_page, live_server, rq_worker):
    user = signed_in_page()
    job_id = _submit(live_server, api_token(live_server, user), rows=40, steps=4, stepMs=50, fail=True)
    page.goto("/dashboard/jobs")
    wait_for_socket(page)
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    row.locator('[data-role=status]:text("Failed")').wait_for(timeout=60_000)
    page.screenshot_to("jobs-failed")
    with page.expect_navigation():
        row.get_by_role("button", name=re.compile("^Retry")).click()
    page.locator("text=dataProcessing job queued again.").wait_for()
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    # Retried for real: it runs again and, being made to fail, fails again, shown live.
    row.locator('[data-role=status]:text("Failed")').wait_for(timeout=60_000)
    page.goto(f"/dashboard/jobs/{job_id}")
    assert "dataProcessing failed on purpose" in page.content()
    assert_accessible(page)
    page.screenshot_to("job-failed-detail")
