"""Long answers through the real agent and Claude Code: shown whole and exact, code highlighted
as soon as its block is closed."""

from playwright.sync_api import expect

from tests.browser.helpers import ANSWER_TIMEOUT_MS, answer, send, slow_text, turn, wait_state


def test_a_long_answer_is_shown_whole_and_exact(ui):
    ui.start_agent()
    page = ui.chat()
    send(page, "deltas: 30000")
    wait_state(turn(page))
    # Letter for letter, not only after whitespace is folded: the text is the model's.
    expect(answer(page)).to_contain_text("w29999", timeout=ANSWER_TIMEOUT_MS)
    assert answer(page).text_content().strip() == slow_text(30000)


def test_a_code_block_is_highlighted_once_closed_while_the_answer_still_streams(ui):
    ui.start_agent()
    page = ui.chat()
    send(page, "say: ```python\nprint('hi')\n```\nslow: 400 25")
    code = answer(page).locator("pre code.hljs")
    expect(code.locator(".hljs-built_in")).to_have_text("print", timeout=ANSWER_TIMEOUT_MS)
    # Highlighted while the rest of the answer (400 more deltas, 10 s) is still on its way.
    expect(turn(page)).to_have_attribute("data-state", "running")
    wait_state(turn(page))
    expect(code).to_have_text("print('hi')")
    assert answer(page).locator("p").text_content() == slow_text(400)
