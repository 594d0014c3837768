"""At phone size (390 x 844) nothing scrolls sideways and every button is a 44 px tap target."""

from playwright.sync_api import expect

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
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide"
    assert horizontal_overflow(page) == 0
    wide = sticking_out(page)
    assert not wide, f"cut off at the right edge of {page.url}: {wide[:10]}"
    small = visible_buttons_shorter_than(page, 44)
    assert not small, f"tap targets under 44 px on {page.url}: {small}"


def test_login_dashboard_and_chat_fit_a_phone(ui):
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
