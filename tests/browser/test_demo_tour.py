"""The demo tour in Chromium: the agent runs with `--demo`, as `make run` starts it without Anthropic
credentials, and a new user's ordinary first request shows what Tether does."""

import os

from playwright.sync_api import expect

from agent_client.standin import TOUR_FILE, TOUR_GREETING, TOUR_PROGRAM
from tests.browser.helpers import ANSWER_TIMEOUT_MS, answer, screenshot, send, turn, wait_state


def allow(page, tool_name):
    request = page.get_by_test_id("permission-request")
    expect(request).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(request).to_have_attribute("data-tool-name", tool_name)
    request.get_by_test_id("allow").click()
    expect(request).to_have_count(0)


def test_a_first_request_in_the_demo_writes_a_file_runs_it_and_shows_the_output(ui):
    page = ui.open_chat(ui.signed_in_page(), wait_agent=False)
    expect(page.get_by_test_id("demo-badge")).to_be_hidden()
    # An agent that connects while the page is open says it is the demo model (agent_status).
    ui.start_agent(extra_args=["--demo"])
    expect(page.get_by_test_id("demo-badge")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    page.reload()  # and a page loaded later draws it from what the agent said when it connected
    expect(page.get_by_test_id("demo-badge")).to_be_visible()

    send(page, "write me a hello world script")
    expect(answer(page)).to_contain_text("This is Tether's demo model", timeout=ANSWER_TIMEOUT_MS)
    expect(answer(page)).to_contain_text("ANTHROPIC_API_KEY")
    expect(page.get_by_test_id("permission-request")).to_contain_text(TOUR_FILE, timeout=ANSWER_TIMEOUT_MS)
    screenshot(page, "demo-tour-permission-desktop.png")
    allow(page, "Write")
    allow(page, "Bash")
    wait_state(turn(page))

    expect(answer(page).locator("pre:visible", has_text=TOUR_GREETING).first).to_be_visible()  # the output
    expect(answer(page)).to_contain_text("That was the tour")
    expect(page.get_by_test_id("tool-call")).to_have_count(2)
    with open(os.path.join(ui.seed.project_path, TOUR_FILE)) as file:
        assert file.read() == TOUR_PROGRAM
    screenshot(page, "demo-tour-desktop.png")
