"""The chat page against the real agent and Claude Code: streaming, Markdown, several browsers,
permissions and stop."""

import os
import re

from playwright.sync_api import expect

from tests.browser.helpers import (
    ANSWER_TIMEOUT_MS,
    RICH_ANSWER,
    answer,
    send,
    session_id_of,
    slow_text,
    turn,
    wait_state,
)


def test_send_button_streams_the_answer_and_puts_the_session_in_the_url(ui):
    ui.start_agent()
    page = ui.chat()
    expect(page.get_by_test_id("empty-state")).to_be_visible()
    send(page, "slow: 100 40")
    # The text grows while it streams, then ends whole.
    expect(answer(page)).to_contain_text("w3", timeout=ANSWER_TIMEOUT_MS)
    expect(page.get_by_test_id("stop")).to_be_visible()
    wait_state(turn(page))
    expect(answer(page)).to_have_text(slow_text(100))
    expect(page.get_by_test_id("user-message")).to_have_text("slow: 100 40")
    expect(page.get_by_test_id("empty-state")).to_be_hidden()
    expect(page.get_by_test_id("stop")).to_be_hidden()
    session_id = session_id_of(page)
    expect(page.locator(f"[data-testid=session-list] a[data-session-id='{session_id}']")).to_have_attribute(
        "aria-current", "page"
    )


def test_enter_sends_and_shift_enter_breaks_the_line(ui):
    ui.start_agent()
    page = ui.chat()
    prompt = page.get_by_test_id("prompt")
    prompt.click()
    prompt.press_sequentially("say: first line")
    prompt.press("Shift+Enter")
    prompt.press_sequentially("second line")
    expect(prompt).to_have_value("say: first line\nsecond line")
    expect(page.get_by_test_id("turn")).to_have_count(0)

    prompt.press("Enter")
    expect(prompt).to_have_value("")
    wait_state(turn(page))
    assert page.get_by_test_id("user-message").text_content() == "say: first line\nsecond line"
    assert answer(page).text_content().strip() == "first line\nsecond line"
    session_id_of(page)


def test_markdown_is_rendered_and_raw_html_is_not(ui):
    ui.start_agent()
    page = ui.chat()
    send(page, "say: **bold** and `code` and <b>raw</b>\n\n```python\nprint('hi')\n```", key="Enter")
    wait_state(turn(page))
    message = answer(page)
    expect(message.locator("strong")).to_have_text("bold")
    expect(message.locator("p code")).to_have_text("code")
    expect(message.locator("b")).to_have_count(0)
    expect(message).to_contain_text("<b>raw</b>")
    expect(message.locator("pre code.hljs")).to_contain_text("print('hi')")


def test_second_browser_on_the_same_session_sees_the_same_text(ui):
    ui.start_agent()
    first = ui.chat()
    send(first, "slow: 100 30")
    session_id = session_id_of(first)
    expect(answer(first)).to_contain_text("w1", timeout=ANSWER_TIMEOUT_MS)
    second = ui.chat(session_id=session_id)  # another browser, joining mid-stream
    for page in (first, second):
        wait_state(turn(page))
        expect(answer(page)).to_have_text(slow_text(100))
        expect(page.get_by_test_id("turn")).to_have_count(1)
    expect(second.get_by_test_id("user-message")).to_have_text("slow: 100 30")

    # and the next command, sent from the second browser, reaches the first
    send(second, "say: from the second browser")
    for page in (first, second):
        expect(page.get_by_test_id("turn")).to_have_count(2)
        wait_state(turn(page))
        expect(answer(page)).to_have_text("from the second browser")
    expect(first.get_by_test_id("user-message").last).to_have_text("say: from the second browser")


def test_allow_from_the_page_writes_the_file(ui):
    ui.start_agent()
    page = ui.chat()
    send(page, "write: allowed.txt written from the page")
    request = page.get_by_test_id("permission-request")
    expect(request).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(request).to_have_attribute("data-tool-name", "Write")
    expect(request).to_contain_text("allowed.txt")
    request.get_by_test_id("allow").click()
    expect(request).to_have_count(0)
    wait_state(turn(page))
    expect(page.get_by_test_id("tool-call")).to_have_attribute("data-tool-state", "done")
    with open(os.path.join(ui.seed.project_path, "allowed.txt")) as file:
        assert file.read() == "written from the page"


def test_deny_from_the_page_leaves_no_file(ui):
    ui.start_agent()
    page = ui.chat()
    send(page, "write: denied.txt never written")
    request = page.get_by_test_id("permission-request")
    expect(request).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    request.get_by_test_id("deny").click()
    expect(request).to_have_count(0)
    expect(page.get_by_test_id("turn").last).to_have_attribute(
        "data-state", re.compile("done|failed"), timeout=ANSWER_TIMEOUT_MS
    )
    expect(page.get_by_test_id("tool-call")).to_have_attribute("data-tool-state", "error")
    assert not os.path.exists(os.path.join(ui.seed.project_path, "denied.txt"))


def test_stop_button_and_escape_stop_the_running_command(ui):
    ui.start_agent()
    page = ui.chat()
    stop = page.get_by_test_id("stop")
    expect(stop).to_be_hidden()

    send(page, "slow: 2000 20")
    expect(answer(page)).to_contain_text("w2", timeout=ANSWER_TIMEOUT_MS)
    expect(stop).to_be_visible()
    stop.click()
    wait_state(turn(page), "stopped")
    expect(turn(page).get_by_test_id("command-error")).to_be_visible()
    # Stopping is what the user asked for: the closing line is not flagged as a failure.
    expect(turn(page).get_by_test_id("command-summary")).not_to_have_class(re.compile("is-error"))
    expect(stop).to_be_hidden()
    assert "w1999" not in answer(page).text_content()

    send(page, "slow: 2000 20")
    expect(page.get_by_test_id("turn")).to_have_count(2)
    expect(answer(page)).to_contain_text("w2", timeout=ANSWER_TIMEOUT_MS)
    expect(stop).to_be_visible()
    page.keyboard.press("Escape")
    wait_state(turn(page), "stopped")
    expect(stop).to_be_hidden()
    expect(page.get_by_test_id("send")).to_be_enabled()


def test_permission_answered_in_one_browser_leaves_the_other(ui):
    ui.start_agent()
    first = ui.chat()
    send(first, "write: shared.txt answered once")
    second = ui.chat(session_id=session_id_of(first))
    for page in (first, second):
        expect(page.get_by_test_id("permission-request")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    second.get_by_test_id("allow").click()
    for page in (first, second):
        expect(page.get_by_test_id("permission-request")).to_have_count(0)
        wait_state(turn(page))
    assert os.path.exists(os.path.join(ui.seed.project_path, "shared.txt"))


def test_new_session_clears_the_view_and_back_returns_to_the_old_one(ui):
    ui.start_agent()
    page = ui.chat()
    send(page, "say: the first session")
    wait_state(turn(page))
    first_id = session_id_of(page)

    page.get_by_test_id("new-session").click()
    expect(page).not_to_have_url(re.compile("session="))
    expect(page.get_by_test_id("turn")).to_have_count(0)
    expect(page.get_by_test_id("empty-state")).to_be_visible()
    expect(page.get_by_test_id("prompt")).to_be_focused()
    send(page, "recall", key="Enter")
    wait_state(turn(page))
    second_id = session_id_of(page)
    assert second_id != first_id
    expect(page.get_by_test_id("turn")).to_have_count(1)
    expect(page.get_by_test_id("session-list").locator("a[data-session-id]")).to_have_count(2)

    page.get_by_test_id("session-list").locator(f"a[data-session-id='{first_id}']").click()
    expect(page).to_have_url(re.compile(f"session={first_id}"))
    expect(answer(page)).to_have_text("the first session")
    page.go_back()
    expect(page).to_have_url(re.compile(f"session={second_id}"))
    expect(page.get_by_test_id("user-message")).to_have_text("recall")
    expect(
        page.get_by_test_id("session-list").locator(f"a[data-session-id='{second_id}']")
    ).to_have_attribute("aria-current", "page")


def test_send_to_an_offline_agent_keeps_the_text_and_the_error_clears_when_it_connects(ui):
    page = ui.open_chat(ui.signed_in_page(), wait_agent=False)
    expect(page.get_by_test_id("agent-status")).to_have_attribute("data-agent-status", "offline")
    send(page, "say: sent once the agent is back")
    error = page.get_by_test_id("send-error")
    expect(error).to_contain_text("offline")
    expect(page.get_by_test_id("prompt")).to_have_value("say: sent once the agent is back")
    expect(page.get_by_test_id("turn")).to_have_count(0)

    ui.start_agent()
    expect(page.get_by_test_id("agent-status")).to_have_attribute(
        "data-agent-status", "online", timeout=ANSWER_TIMEOUT_MS
    )
    expect(error).to_be_hidden()
    page.get_by_test_id("send").click()
    wait_state(turn(page))
    expect(answer(page)).to_have_text("sent once the agent is back")


def test_a_failed_command_shows_its_error_and_the_view_follows_to_its_end(ui):
    ui.start_agent()
    page = ui.chat()
    send(page, RICH_ANSWER)  # long enough to scroll
    wait_state(turn(page))
    send(page, "fail: 500 the model is down")
    wait_state(turn(page), "failed")
    expect(turn(page).get_by_test_id("command-error")).to_contain_text("the model is down")
    expect(turn(page).get_by_test_id("command-summary")).not_to_contain_text("success")
    # The error and the closing line arrive last: they are in view, not under the composer.
    expect(turn(page).get_by_test_id("command-state")).to_be_in_viewport(ratio=1)


def test_permission_mode_chosen_on_the_page_lets_edits_through_without_asking(ui):
    ui.start_agent()
    page = ui.chat()
    mode = page.get_by_test_id("permission-mode")
    mode.select_option("acceptEdits")
    expect(mode).to_have_attribute("data-saved", "acceptEdits")
    send(page, "write: accepted.txt no prompt needed")
    wait_state(turn(page))
    expect(page.get_by_test_id("permission-request")).to_have_count(0)
    with open(os.path.join(ui.seed.project_path, "accepted.txt")) as file:
        assert file.read() == "no prompt needed"
    page.reload()
    expect(page.get_by_test_id("permission-mode")).to_have_value("acceptEdits")
