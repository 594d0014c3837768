"""A long session opens at its end and loads older turns as the reader scrolls up."""

from playwright.sync_api import expect

from tests.browser.helpers import SCROLL_SETTLED, answer
from tests.test_turns import make_answered_session, text_answer

TURNS = 45  # the page asks for 20 at a time (app/main/routes.py TURNS_PAGE)

# The turn at the top of the view: its prompt and how far below the view's top it starts.
TOP_TURN = """() => {
  const view = document.querySelector(".scroller").getBoundingClientRect();
  for (const turn of document.querySelectorAll("[data-testid=turn]")) {
    const box = turn.getBoundingClientRect();
    if (box.bottom > view.top + 1) {
      return [turn.querySelector("[data-testid=user-message]").textContent, Math.round(box.top - view.top)];
    }
  }
  return null;
}"""


def make_long_session(ui):
    words = "words to read " * 20
    answers = [text_answer(f"Answer {n}: {words}", f"end of answer {n}.") for n in range(TURNS)]
    session_id, _ = make_answered_session(ui.live.app, ui.seed, answers)
    return ui.open_chat(ui.signed_in_page(), session_id, wait_agent=False)


def prompts(page):
    return page.get_by_test_id("user-message").all_text_contents()


def test_a_long_session_opens_at_its_end_and_older_turns_load_as_the_reader_scrolls_up(ui):
    page = make_long_session(ui)
    turns = page.get_by_test_id("turn")
    expect(turns).to_have_count(20)
    expect(answer(page)).to_contain_text(f"end of answer {TURNS - 1}.")
    expect(answer(page)).to_be_in_viewport()
    assert prompts(page) == [f"prompt {n}" for n in range(TURNS - 20, TURNS)]

    page.locator(".scroller").hover()
    while (shown := turns.count()) < TURNS:  # each time the reader reaches the top, a page loads
        page.mouse.wheel(0, -1_000_000)
        expect(turns).not_to_have_count(shown)
    expect(page.get_by_test_id("load-older")).to_be_hidden()
    assert prompts(page) == [f"prompt {n}" for n in range(TURNS)]
    expect(answer(page, 0)).to_contain_text("end of answer 0.")
    for state in turns.evaluate_all("(ts) => ts.map((t) => t.dataset.state)"):
        assert state == "done"


def test_older_turns_go_in_above_without_moving_what_the_reader_sees(ui):
    page = make_long_session(ui)
    turns = page.get_by_test_id("turn")
    expect(turns).to_have_count(20)
    page.locator(".scroller").hover()
    page.mouse.wheel(0, -1500)  # the reader scrolls up a little, into the middle
    page.evaluate(SCROLL_SETTLED)
    before = page.evaluate(TOP_TURN)

    # The button loads the page above (keyboard users have it; the page does not scroll to it).
    page.evaluate("document.querySelector('[data-testid=load-older] button').focus({ preventScroll: true })")
    page.keyboard.press("Enter")
    expect(turns).to_have_count(40)
    page.evaluate(SCROLL_SETTLED)
    assert page.evaluate(TOP_TURN) == before
