"""The whole flow with real processes: browser -> server -> agent -> Claude Code -> back."""

from tests.harness import assert_gapless, wait_until


def test_command_streams_text_from_claude_code_to_the_browser(live):
    seed, (browser,) = live.ready()

    reply = browser.run(seed.project_id, "say: Hello from the stand-in model, streamed in pieces.")
    final = browser.wait_final(reply["commandId"])

    assert final["status"] == "complete", final
    assert browser.text_of(reply["commandId"]) == "Hello from the stand-in model, streamed in pieces."
    assert_gapless(browser.session_results(reply["sessionId"]))


def test_three_browsers_see_the_same_stream_and_a_late_one_gets_history(live):
    seed, (sender, second, third) = live.ready(browsers=3)

    reply = sender.run(seed.project_id, "slow: 40 20")
    session_id = reply["sessionId"]
    for browser in (second, third):
        assert browser.call("subscribe", {"sessionId": session_id, "afterSeq": 0})["ok"]
    for browser in (sender, second, third):
        browser.wait_final(reply["commandId"])

    streams = [
        [(r["seq"], r["response"]) for r in b.session_results(session_id)] for b in (sender, second, third)
    ]
    assert streams[0] == streams[1] == streams[2]
    late = live.browser(seed)
    ack = late.call("subscribe", {"sessionId": session_id, "afterSeq": 0})
    assert ack["ok"] and ack["lastSeq"] == streams[0][-1][0]
    wait_until(lambda: len(late.session_results(session_id)) == len(streams[0]), message="history replay")
    assert [(r["seq"], r["response"]) for r in late.session_results(session_id)] == streams[0]


def test_agent_going_offline_and_back_is_reported_and_commands_refused_meanwhile(live):
    seed, (browser,) = live.ready()
    agent = live.latest_agent

    agent.stop()
    browser.agent_online(seed.agent_id, online=False)
    refused = browser.call("execute_command", {"projectId": seed.project_id, "command": "say: hi"})
    assert refused == {
        "ok": False,
        "error": {"code": "agent_offline", "message": refused["error"]["message"]},
    }

    live.agent(seed)
    browser.agent_online(seed.agent_id)
    reply = browser.run(seed.project_id, "say: back again")
    assert browser.wait_final(reply["commandId"])["status"] == "complete"


def test_second_command_in_a_busy_session_is_refused(live):
    seed, (browser,) = live.ready()

    first = browser.run(seed.project_id, "slow: 30 50")
    busy = browser.call(
        "execute_command",
        {"projectId": seed.project_id, "command": "say: x", "sessionId": first["sessionId"]},
    )
    assert busy["ok"] is False and busy["error"]["code"] == "session_busy"
    browser.wait_final(first["commandId"])
    follow_up = browser.run(seed.project_id, "recall", session_id=first["sessionId"])
    browser.wait_final(follow_up["commandId"])
    assert "slow: 30 50" in browser.text_of(follow_up["commandId"])
