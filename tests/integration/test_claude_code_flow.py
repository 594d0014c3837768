"""Claude Code through the whole system: tools, permissions from the browser, stop, resume."""

import os

from tests.harness import events_of, wait_until


def test_bash_tool_call_and_its_output_arrive_as_events(live):
    seed, (browser,) = live.ready()
    reply = browser.run(seed.project_id, "bash: echo tether-$((6*7))")
    final = browser.wait_final(reply["commandId"])
    assert final["status"] == "complete", final
    (tool_use,) = events_of(browser, reply["commandId"], "tool_use")
    assert tool_use["name"] == "Bash" and "echo tether-" in tool_use["input"]["command"]
    (tool_result,) = events_of(browser, reply["commandId"], "tool_result")
    assert "tether-42" in str(tool_result["content"]) and not tool_result["is_error"]
    (result,) = events_of(browser, reply["commandId"], "result")
    assert result["num_turns"] >= 2
    assert events_of(browser, reply["commandId"], "system")[0]["subtype"] == "init"


def test_write_asks_every_browser_and_allow_from_one_writes_the_file(live):
    seed, (first, second) = live.ready(browsers=2)
    reply = first.run(seed.project_id, "write: allowed.txt hello from tether")
    second.follow(reply["sessionId"])
    for browser in (first, second):
        wait_until(lambda b=browser: b.permissions, message="permission request in each browser")
    request = first.permissions[0]
    assert request["toolName"] == "Write" and request["commandId"] == reply["commandId"]
    ack = second.call(
        "permission_response",
        {"sessionId": reply["sessionId"], "requestId": request["requestId"], "decision": "allow"},
    )
    assert ack["ok"]
    assert first.wait_final(reply["commandId"])["status"] == "complete"
    with open(os.path.join(seed.project_path, "allowed.txt")) as file:
        assert file.read() == "hello from tether"
    wait_until(
        lambda: any(name == "permission_resolved" for name, _ in first.events), message="resolved event"
    )


def test_deny_keeps_the_file_unwritten_and_the_model_hears_why(live):
    seed, (browser,) = live.ready()
    reply = browser.run(seed.project_id, "write: denied.txt nope")
    wait_until(lambda: browser.permissions, message="permission request")
    request = browser.permissions[0]
    browser.call(
        "permission_response",
        {
            "sessionId": reply["sessionId"],
            "requestId": request["requestId"],
            "decision": "deny",
            "message": "not today",
        },
    )
    browser.wait_final(reply["commandId"])
    assert not os.path.exists(os.path.join(seed.project_path, "denied.txt"))
    (tool_result,) = events_of(browser, reply["commandId"], "tool_result")
    assert tool_result["is_error"] and "not today" in str(tool_result["content"])


def test_pending_permission_is_shown_again_to_a_browser_that_subscribes_later(live):
    seed, (browser,) = live.ready()
    reply = browser.run(seed.project_id, "write: later.txt content")
    wait_until(lambda: browser.permissions, message="permission request")
    late = live.browser(seed)
    late.follow(reply["sessionId"])
    wait_until(lambda: late.permissions, message="permission request replayed to a late browser")
    assert late.permissions[0]["requestId"] == browser.permissions[0]["requestId"]
    late.call(
        "permission_response",
        {"sessionId": reply["sessionId"], "requestId": late.permissions[0]["requestId"], "decision": "allow"},
    )
    assert browser.wait_final(reply["commandId"])["status"] == "complete"


def test_stop_ends_a_long_stream_and_the_session_takes_the_next_command(live):
    seed, (browser,) = live.ready()
    reply = browser.run(seed.project_id, "slow: 2000 20")
    wait_until(lambda: len(browser.session_results(reply["sessionId"])) > 3, message="streaming")
    assert browser.call("cancel_command", {"sessionId": reply["sessionId"]})["ok"]
    final = browser.wait_final(reply["commandId"], timeout=15)
    assert final["status"] == "error" and final["error"]["code"] == "interrupted"
    follow_up = browser.run(seed.project_id, "say: after the stop", session_id=reply["sessionId"])
    assert browser.wait_final(follow_up["commandId"])["status"] == "complete"
    assert browser.text_of(follow_up["commandId"]) == "after the stop"


def test_conversation_resumes_after_the_agent_restarts(live):
    seed, (browser,) = live.ready()
    first = browser.run(seed.project_id, "say: remember the word pelican")
    browser.wait_final(first["commandId"])
    live.latest_agent.stop()
    browser.agent_online(seed.agent_id, online=False)
    live.agent(seed)
    browser.agent_online(seed.agent_id)
    second = browser.run(seed.project_id, "recall", session_id=first["sessionId"])
    browser.wait_final(second["commandId"])
    assert "remember the word pelican" in browser.text_of(second["commandId"])


def test_two_sessions_run_in_parallel_on_one_agent(live):
    seed, (browser,) = live.ready()
    one = browser.run(seed.project_id, "slow: 50 20")
    two = browser.run(seed.project_id, "slow: 50 20")
    assert one["sessionId"] != two["sessionId"]
    for reply in (one, two):
        assert browser.wait_final(reply["commandId"])["status"] == "complete"
        assert browser.text_of(reply["commandId"]) == " ".join(f"w{i}" for i in range(50))


def test_model_api_error_ends_the_command_with_a_readable_error(live):
    seed, (browser,) = live.ready()
    reply = browser.run(seed.project_id, "fail: 400 the stand-in refuses")
    final = browser.wait_final(reply["commandId"], timeout=60)
    assert final["status"] == "error" and final["error"]["code"] == "claude_error"
    assert final["error"]["message"]


def test_working_directory_outside_the_agent_roots_is_refused(live, tmp_path):
    seed, (browser,) = live.ready()
    outside = str(tmp_path.parent)
    reply = browser.run(seed.project_id, "say: hi", workingDirectory=outside)
    final = browser.wait_final(reply["commandId"])
    assert final["status"] == "error" and "outside" in final["error"]["message"]


def test_accept_edits_mode_writes_without_asking(live):
    from app import db
    from app.models import Project

    seed, (browser,) = live.ready()
    with live.app.app_context():
        db.session.get(Project, seed.project_id).permission_mode = "acceptEdits"
        db.session.commit()
    reply = browser.run(seed.project_id, "write: edited.txt no questions asked")
    assert browser.wait_final(reply["commandId"])["status"] == "complete"
    assert not browser.permissions
    with open(os.path.join(seed.project_path, "edited.txt")) as file:
        assert file.read() == "no questions asked"


def init_mode(browser, command_id):
    return events_of(browser, command_id, "system")[0]["permissionMode"]


def test_plan_for_one_command_then_the_projects_mode_again(live):
    from app import db
    from app.models import Project

    seed, (browser,) = live.ready()
    with live.app.app_context():
        db.session.get(Project, seed.project_id).permission_mode = "acceptEdits"
        db.session.commit()
    planned = browser.run(seed.project_id, "say: a plan", permissionMode="plan")
    assert browser.wait_final(planned["commandId"])["status"] == "complete"
    assert init_mode(browser, planned["commandId"]) == "plan"

    # The next command of the same session (the same live Claude Code) runs in the project's mode.
    edited = browser.run(seed.project_id, "write: edited.txt after the plan", session_id=planned["sessionId"])
    assert browser.wait_final(edited["commandId"])["status"] == "complete"
    assert init_mode(browser, edited["commandId"]) == "acceptEdits"
    assert not browser.permissions
    with open(os.path.join(seed.project_path, "edited.txt")) as file:
        assert file.read() == "after the plan"
    turns = browser.http.get(f"{live.url}/api/sessions/{planned['sessionId']}/commands").json()
    assert [t["permissionMode"] for t in turns] == ["plan", None]


def test_a_command_may_not_ask_for_a_looser_mode_than_its_project(live):
    seed, (browser,) = live.ready()
    for mode in ("acceptEdits", "bypassPermissions", "default"):
        reply = browser.call(
            "execute_command", {"projectId": seed.project_id, "command": "say: x", "permissionMode": mode}
        )
        assert reply["error"]["code"] == "invalid_message", reply
