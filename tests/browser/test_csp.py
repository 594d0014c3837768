"""Every page runs under the strict CSP without a violation, a console error or an uncaught exception."""

from playwright.sync_api import expect

from tests.browser.helpers import ANSWER_TIMEOUT_MS, RICH_ANSWER, answer, send, turn, wait_state


def test_pages_log_no_errors_and_no_csp_violations(ui, browsers):
    page = ui.page()
    page.goto("/login")
    expect(page.locator("input[name=username]")).to_be_focused()
    page.locator("input[name=username]").fill(ui.seed.username)
    page.locator("input[name=password]").fill("wrong")
    page.locator("form button[type=submit]").click()
    expect(page.get_by_role("alert")).to_be_visible()

    ui.sign_in(page)
    ui.start_agent()
    expect(page.locator(f"[data-agent-id='{ui.seed.agent_id}']")).to_have_attribute(
        "data-agent-status", "online", timeout=ANSWER_TIMEOUT_MS
    )

    ui.open_chat(page)
    send(page, RICH_ANSWER)
    wait_state(turn(page))
    expect(answer(page).locator("pre code.hljs")).to_be_visible()  # highlight.js ran
    send(page, "bash: echo csp-check")
    wait_state(turn(page))
    expect(page.get_by_test_id("tool-call")).to_have_attribute("data-tool-state", "done")
    page.reload()
    expect(page.get_by_test_id("turn")).to_have_count(2)
    wait_state(turn(page))

    page.goto(f"/projects/{ui.seed.project_id}/audit")
    expect(page.get_by_test_id("audit-log")).to_be_visible()

    assert browsers.log.console_errors == []
    assert browsers.log.page_errors == []
    assert browsers.csp_violations() == []
