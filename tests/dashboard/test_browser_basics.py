"""In a real browser: sign in, create an API key, sign out; pages pass axe-core on desktop and phone widths."""
import re

from tests.dashboard.conftest import assert_accessible, browser_sign_in


def test_an_admin_signs_in_creates_a_key_with_the_keyboard_and_signs_out(page, make_user):
    user = make_user(admin=True, email="admin@example.com")
    page.goto("/dashboard/keys")
    assert "/dashboard/login" in page.url
    assert_accessible(page)
    page.get_by_label("E-mail").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    with page.expect_navigation(url=re.compile(r"/dashboard/keys$")):
        page.keyboard.press("Enter")
    assert_accessible(page)
    page.get_by_label("Name").fill("ci-worker")
    page.get_by_label("process").check()
    with page.expect_navigation():
        page.get_by_label("Name").press("Enter")
    secret = page.locator("[data-role=secret]").input_value()
    assert secret.startswith("cvk_")
    assert_accessible(page)
    page.screenshot_to("keys-created")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/dashboard/login$"))


def test_the_pages_fit_a_phone_screen_and_pass_axe_there(page, make_user):
    user = make_user(admin=True)
    page.set_viewport_size({"width": 375, "height": 740})
    browser_sign_in(page, user)
    for name in ("jobs", "projects", "webhooks", "workers", "keys"):
        page.goto(f"/dashboard/{name}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"/dashboard/{name} scrolls sideways on a phone ({width}px)"
        assert_accessible(page)
        page.screenshot_to(f"{name}-phone")


def test_a_form_posted_without_its_csrf_token_is_refused_with_a_page_that_says_why(live_server, make_user):
    import requests
    user = make_user()
    res = requests.post(f"{live_server}/dashboard/login", data={"email": user.email, "password": user.password},
                        allow_redirects=False, timeout=10)
    assert res.status_code == 400 and "This form has expired" in res.text
