"""Signing in through the real form."""

import re

from playwright.sync_api import expect


def test_sign_in_leads_to_the_dashboard(ui):
    page = ui.page()
    page.goto("/login")
    page.locator("input[name=username]").fill(ui.seed.username)
    page.locator("input[name=password]").fill(ui.seed.password)
    page.locator("form button[type=submit]").click()
    expect(page).to_have_url(ui.url + "/")
    expect(page.get_by_test_id("agents")).to_be_visible()
    expect(page.locator(f"[data-agent-id='{ui.seed.agent_id}']")).to_be_visible()
    expect(
        page.get_by_test_id("projects").locator(f"a[data-project-id='{ui.seed.project_id}']")
    ).to_be_visible()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")


def test_wrong_password_shows_an_error_and_stays_on_the_form(ui):
    page = ui.page()
    page.goto("/login")
    page.locator("input[name=username]").fill(ui.seed.username)
    page.locator("input[name=password]").fill("not the password")
    page.locator("form button[type=submit]").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page).to_have_url(ui.url + "/login")
    expect(page.locator("input[name=password]")).to_be_visible()
    # and the dashboard still wants a sign-in
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login(\?|$)"))
