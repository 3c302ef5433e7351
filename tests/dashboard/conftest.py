"""Dashboard fixtures: a signed-in test client, and headless Chromium (Debian's) driven by Playwright."""
import os
import re

import html5lib
import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE = os.path.join(os.path.dirname(__file__), "vendor", "axe.min.js")


def assert_valid_html(html: str) -> None:
    """html5lib's strict parser raises on the first parse error (bad nesting, stray end tags, …)."""
    parser = html5lib.HTMLParser(strict=True)
    try:
        parser.parse(html)
    except html5lib.html5parser.ParseError as exc:
        raise AssertionError(f"invalid HTML: {exc}\n{html[:300]}") from None
    ids = re.findall(r'\sid="([^"]+)"', html)
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, f"duplicate ids: {duplicates}"


@pytest.fixture
def client(app):
    """A test client whose every request ends its database transaction, as a request to the real server does.

    Sharing one session across requests would keep a read snapshot open in between, and on SQLite a
    write from a stale snapshot fails while the RQ worker commits in the background."""
    from flask.testing import FlaskClient

    from app.extensions import db

    class PerRequestSession(FlaskClient):
        def open(self, *args, **kwargs):
            try:
                return super().open(*args, **kwargs)
            finally:
                db.session.rollback()

    return PerRequestSession(app, app.response_class, use_cookies=True)


@pytest.fixture
def sign_in(client):
    """Sign the test client in through the form, as a browser would."""
    def do(user):
        res = client.post("/dashboard/login", data={"email": user.email, "password": user.password})
        assert res.status_code == 302, res.get_data(as_text=True)[:500]
        return client
    return do


@pytest.fixture
def page_ok(client):
    """GET a page: 200 and valid HTML, returning its text."""
    def get(url):
        res = client.get(url)
        assert res.status_code == 200, (url, res.status_code, res.get_data(as_text=True)[:500])
        html = res.get_data(as_text=True)
        assert_valid_html(html)
        return html
    return get


# ---- the browser ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM}: install Debian's `chromium` (`make browser`) "
                    "to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server, output_dir, request):
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(30000)  # two cores shared with other test runs: be patient, not flaky
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.screenshot_to = lambda name: pg.screenshot(path=os.path.join(output_dir, f"{name}.png"), full_page=True)
    yield pg
    if getattr(request.node, "rep_call_failed", False):
        pg.screenshot_to(f"FAILED-{request.node.name}")
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call_failed = report.failed


def browser_sign_in(pg, user):
    pg.goto("/dashboard/login")
    pg.get_by_label("E-mail").fill(user.email)
    pg.get_by_label("Password").fill(user.password)
    with pg.expect_navigation(url=re.compile(r"/dashboard/(?!login)")):
        pg.get_by_role("button", name="Sign in").click()


def assert_accessible(pg):
    """axe-core (vendored) in the page: WCAG 2 A/AA rules, landmarks, labels and contrast."""
    pg.wait_for_load_state("load")
    pg.add_script_tag(path=AXE)
    result = pg.evaluate("""async () => {
        const tags = ['wcag2a', 'wcag2aa', 'wcag21aa', 'best-practice'];
        const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    assert not result, f"accessibility violations on {pg.url}: {result}"


@pytest.fixture
def signed_in_page(page, make_user):
    def do(**kwargs):
        user = make_user(**kwargs)
        browser_sign_in(page, user)
        return user
    return do


def api_token(live_server, user) -> str:
    """A Bearer token for the same user, to start jobs through the public API as an integrator would."""
    import requests
    res = requests.post(f"{live_server}/auth/login", json={"email": user.email, "password": user.password}, timeout=10)
    assert res.status_code == 200, res.text
    return res.json()["access_token"]


def wait_for_socket(pg):
    """The page's WebSocket said `ready`: later job events reach it."""
    pg.wait_for_selector('#live-status[data-state="online"]', timeout=15000)
