"""The chat page keeps a stream whole across a server restart and a page reload."""

from playwright.sync_api import expect

from tests.browser.helpers import (
    ANSWER_TIMEOUT_MS,
    WATCH_CONNECTION,
    answer,
    send,
    session_id_of,
    slow_text,
    turn,
    wait_state,
)


def test_server_restart_mid_stream_shows_disconnected_then_connected_and_loses_nothing(ui):
    ui.start_agent()
    page = ui.chat()
    status = page.get_by_test_id("connection-status")
    page.evaluate(WATCH_CONNECTION)
    send(page, "slow: 150 20")
    session_id_of(page)
    expect(answer(page)).to_contain_text("w5", timeout=ANSWER_TIMEOUT_MS)

    ui.live.restart_server(kill=True)  # returns once the new server answers

    expect(status).to_have_attribute("data-state", "connected", timeout=60_000)
    states = page.evaluate("window.__connectionStates")
    assert "disconnected" in states, states
    assert states[-1] == "connected", states
    wait_state(turn(page))
    expect(answer(page)).to_have_text(slow_text(150))
    expect(page.get_by_test_id("turn")).to_have_count(1)
    expect(page.get_by_test_id("stop")).to_be_hidden()


def test_reload_mid_stream_shows_the_whole_answer_once(ui):
    ui.start_agent()
    page = ui.chat()
    send(page, "slow: 250 20")
    session_id = session_id_of(page)
    expect(answer(page)).to_contain_text("w5", timeout=ANSWER_TIMEOUT_MS)

    page.reload()
    assert session_id_of(page) == session_id
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    expect(page.get_by_test_id("user-message")).to_have_text("slow: 250 20")
    wait_state(turn(page))
    expect(answer(page)).to_have_text(slow_text(250))
    expect(page.get_by_test_id("turn")).to_have_count(1)
