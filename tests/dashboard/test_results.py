"""Job results as the Job page shows them, with a real RQ worker: import counts and error rows,
validation findings, test results, and the export's download link."""
import io
import re
import time

import pytest

from tests.dashboard.conftest import assert_valid_html

pytestmark = pytest.mark.slow
CSV = b"tag,area,type\nTT-100,300,AI\nTT-101,300,AO\nXX-102,310,AI\n,311,AI\n"


def _finished(client, job_url, timeout=60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        html = client.get(job_url).get_data(as_text=True)
        if re.search(r'data-role="status">(Completed|Failed|Cancelled)<', html):
            assert_valid_html(html)
            return html
        time.sleep(0.3)
    raise AssertionError(f"{job_url} did not finish:\n{html[:3000]}")


def test_import_validation_test_run_and_export_results_are_shown_with_a_download(client, make_user, sign_in,
                                                                                  rq_worker):
    sign_in(make_user())
    project = client.post("/dashboard/projects", data={"name": "Plant B"}).headers["Location"]
    res = client.post(f"{project}/import", data={"file": (io.BytesIO(CSV), "tags.csv")})
    html = _finished(client, res.headers["Location"])
    assert "rows with errors" in html and "the key field &#39;tag&#39; is empty" in html

    client.post(f"{project}/rules", data={"name": "Tag format", "kind": "pattern", "field": "tag",
                                          "params": '{"regex": "TT-[0-9]+"}'})
    html = _finished(client, client.post(f"{project}/start/validation").headers["Location"])
    assert "Tag format" in html and "XX-102" in html and "1</b> violations" in html

    client.post(f"{project}/scenarios", data={"name": "Three records", "assertions": '[{"kind": "count", "value": 3}]'})
    html = _finished(client, client.post(f"{project}/start/testrun").headers["Location"])
    assert "Three records" in html and "scenarios passed" in html and 'badge completed">passed' in html

    job_url = client.post(f"{project}/start/export", data={"format": "csv"}).headers["Location"]
    html = _finished(client, job_url)
    link = re.search(r'href="(/dashboard/jobs/[^"]+/download)"', html).group(1)
    res = client.get(link)
    assert res.status_code == 200 and "attachment" in res.headers["Content-Disposition"]
    assert b"TT-100" in res.data and b"XX-102" in res.data
