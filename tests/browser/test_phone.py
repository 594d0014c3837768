"""At phone size (390 x 844) nothing scrolls sideways and every button is a 44 px tap target."""

import os

from playwright.sync_api import expect

from app import db
from app.models import Project
from tests.browser.helpers import (
    ANSWER_TIMEOUT_MS,
    PHONE,
    RICH_ANSWER,
    answer,
    horizontal_overflow,
    send,
    sticking_out,
    turn,
    visible_buttons_shorter_than,
    wait_state,
)


def assert_fits_a_phone(page):
    # Measured once the stylesheet has loaded: an element can be visible (and so awaited)
    # before it, and an unstyled page is as wide as its longest line (a busy CI server
    # served app.css late after the form that adds an agent).
    page.wait_for_load_state("load")
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide"
    assert horizontal_overflow(page) == 0
    wide = sticking_out(page)
    assert not wide, f"cut off at the right edge of {page.url}: {wide[:10]}"
    small = visible_buttons_shorter_than(page, 44)
    assert not small, f"tap targets under 44 px on {page.url}: {small}"


def give_the_project_a_long_path(ui):
    """A path as deep as CI's temporary folders: the chat page shows it, and it must wrap."""
    path = os.path.join(ui.seed.project_path, "a_folder_with_a_long_name_and_no_hyphen_to_break_at" * 2)
    os.makedirs(path)
    with ui.live.app.app_context():
        db.session.get(Project, ui.seed.project_id).path = path
        db.session.commit()


def test_login_dashboard_and_chat_fit_a_phone(ui):
    give_the_project_a_long_path(ui)
    page = ui.page(PHONE)
    page.goto("/login")
    assert_fits_a_phone(page)
    page.locator("input[name=password]").fill("wrong")
    page.locator("input[name=username]").fill(ui.seed.username)
    page.locator("form button[type=submit]").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert_fits_a_phone(page)

    ui.sign_in(page)
    ui.start_agent()
    agent = page.locator(f"[data-agent-id='{ui.seed.agent_id}']")
    expect(agent).to_have_attribute("data-agent-status", "online", timeout=ANSWER_TIMEOUT_MS)
    assert_fits_a_phone(page)

    ui.open_chat(page)
    assert_fits_a_phone(page)
    send(page, RICH_ANSWER)
    wait_state(turn(page))
    expect(answer(page).locator("table")).to_be_visible()
    # The conversation follows its newest line: the closing state is in view, not under the composer.
    expect(turn(page).get_by_test_id("command-state")).to_be_in_viewport()
    send(page, "bash: echo a-rather-long-output-line-" + "x" * 120)
    wait_state(turn(page))
    page.get_by_test_id("tool-call").first.locator("summary").click()
    send(page, "write: notes.md phone notes")
    expect(page.get_by_test_id("permission-request")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    assert_fits_a_phone(page)
    page.get_by_test_id("deny").click()
    wait_state(turn(page))
    expect(turn(page).get_by_test_id("command-state")).to_be_in_viewport()

    # The full-screen sessions panel fits as well, and closes by touch or with Esc.
    toggle = page.locator(".sessions-toggle")
    by_touch = page.get_by_test_id("close-sessions").click
    for close in (by_touch, lambda: page.keyboard.press("Escape")):
        toggle.click()
        expect(page.get_by_test_id("session-list")).to_be_visible()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        assert_fits_a_phone(page)
        close()
        expect(page.get_by_test_id("session-list")).to_be_hidden()
        expect(toggle).to_have_attribute("aria-expanded", "false")
    # Picking a session in the panel opens it and closes the panel.
    toggle.click()
    page.get_by_test_id("session-list").locator("a[data-session-id]").first.click()
    expect(page.get_by_test_id("session-list")).to_be_hidden()
    expect(page.get_by_test_id("turn")).to_have_count(3)
