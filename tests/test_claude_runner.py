"""SessionManager driving the real bundled Claude Code CLI against the stand-in model."""

from __future__ import annotations

import os
import signal
import stat

import pytest

from agent_client.claude_runner import SessionBusy
from tests.claude_fixtures import WAIT_S, claude_children, make_request, run
from tests.harness import wait_until

pytestmark = pytest.mark.integration  # every test here runs the real Claude Code CLI

# --- text and events ------------------------------------------------------------------


def test_streamed_text_equals_what_the_model_sent(manager, sink, tmp_path):
    text = "Hello **world** — ünïcödé ✓\n\n- one\n- two"
    request = make_request(tmp_path, "say: " + text)
    assert run(manager, sink, request) is None
    assert sink.text_of(request.command_id) == text
    assert len(sink.texts(request.command_id)) > 5  # it streamed, in small deltas
    init = sink.init_event(request.command_id)
    assert init["cwd"] == str(tmp_path)
    assert init["session_id"] and "Bash" in init["tools"]
    assert init["permissionMode"] == "default"
    (result,) = sink.events(request.command_id, "result")
    assert result["subtype"] == "success" and result["is_error"] is False
    assert result["result"] == text and result["session_id"] == init["session_id"]
    assert sink.finish_counts[request.command_id] == 1


def test_twenty_thousand_deltas_arrive_whole(manager, sink, tmp_path):
    request = make_request(tmp_path, "deltas: 20000")
    assert run(manager, sink, request) is None
    assert sink.text_of(request.command_id) == " ".join(f"w{i}" for i in range(20000))
    assert len(sink.texts(request.command_id)) == 20000


def test_bash_call_and_its_output_arrive_as_events(manager, sink, tmp_path):
    request = make_request(tmp_path, "bash: echo tether-bash-ok")
    assert run(manager, sink, request) is None
    (call,) = sink.events(request.command_id, "tool_use")
    assert call["name"] == "Bash" and call["input"]["command"] == "echo tether-bash-ok"
    (result,) = sink.events(request.command_id, "tool_result")
    assert result == {
        "type": "tool_result",
        "tool_use_id": call["id"],
        "content": "tether-bash-ok",
        "is_error": False,
    }
    assert "tether-bash-ok" in sink.text_of(request.command_id)
    # No assistant text is repeated as an event.
    kinds = {e["type"] for e in sink.events(request.command_id)}
    assert kinds == {"system", "tool_use", "tool_result", "result"}


# --- permissions ------------------------------------------------------------------------


def test_allowed_write_writes_the_file(manager, sink, tmp_path):
    request = make_request(tmp_path, "write: hello.txt Hello from Tether")
    manager.run(request)
    ask = sink.wait_permission(request.command_id)
    assert ask.tool_name == "Write"
    assert ask.tool_input["file_path"] == str(tmp_path / "hello.txt")
    assert manager.answer_permission("s1", ask.request_id, "allow") is True
    assert sink.wait_finish(request.command_id) is None
    assert (tmp_path / "hello.txt").read_text() == "Hello from Tether"
    (result,) = sink.events(request.command_id, "tool_result")
    assert result["is_error"] is False
    # An answered request cannot be answered again.
    assert manager.answer_permission("s1", ask.request_id, "deny") is False


def test_denied_write_leaves_no_file_and_the_run_goes_on(manager, sink, tmp_path):
    request = make_request(tmp_path, "write: hello.txt nope")
    manager.run(request)
    ask = sink.wait_permission(request.command_id)
    assert manager.answer_permission("s1", ask.request_id, "deny", "not in this folder")
    assert sink.wait_finish(request.command_id) is None
    assert not (tmp_path / "hello.txt").exists()
    (result,) = sink.events(request.command_id, "tool_result")
    assert result["is_error"] is True and "not in this folder" in result["content"]
    assert "not in this folder" in sink.text_of(request.command_id)


def test_unanswered_permission_is_denied_after_the_timeout(make_manager, sink, tmp_path):
    manager = make_manager(permission_timeout=1.0)
    request = make_request(tmp_path, "write: late.txt too late")
    manager.run(request)
    ask = sink.wait_permission(request.command_id)
    assert sink.wait_finish(request.command_id) is None
    assert not (tmp_path / "late.txt").exists()
    (result,) = sink.events(request.command_id, "tool_result")
    assert result["is_error"] and "within 1 s" in result["content"]
    expired = sink.events(request.command_id, "permission_expired")
    assert expired == [{"type": "permission_expired", "request_id": ask.request_id, "reason": "timeout"}]
    assert manager.answer_permission("s1", ask.request_id, "allow") is False


def test_answer_permission_rejects_an_unknown_decision(manager):
    with pytest.raises(ValueError):
        manager.answer_permission("s1", "r1", "maybe")
    assert manager.answer_permission("no-such-session", "r1", "allow") is False


# --- cancel -----------------------------------------------------------------------------


def test_cancel_ends_a_slow_stream_and_the_session_takes_the_next_command(manager, sink, tmp_path):
    full = " ".join(f"w{i}" for i in range(2000))
    slow = make_request(tmp_path, "slow: 2000 50")  # 100 s if nothing stopped it
    assert manager.cancel("s1") is False
    manager.run(slow)
    sink.wait_text(slow.command_id, min_chars=10)
    assert manager.running() == [slow.command_id]
    with pytest.raises(SessionBusy):
        manager.run(make_request(tmp_path, "say: too soon"))
    assert manager.cancel("s1") is True
    error = sink.wait_finish(slow.command_id)
    assert error is not None and error["code"] == "interrupted"
    assert full.startswith(sink.text_of(slow.command_id))
    assert sink.text_of(slow.command_id) != full
    assert manager.running() == []

    after = make_request(tmp_path, "say: still here")
    assert run(manager, sink, after) is None
    assert sink.text_of(after.command_id) == "still here"


def test_cancel_while_a_permission_waits(manager, sink, tmp_path):
    request = make_request(tmp_path, "write: never.txt x")
    manager.run(request)
    ask = sink.wait_permission(request.command_id)
    assert manager.cancel("s1") is True
    error = sink.wait_finish(request.command_id)
    assert error is not None and error["code"] == "interrupted"
    assert not (tmp_path / "never.txt").exists()
    assert manager.answer_permission("s1", ask.request_id, "allow") is False
    reasons = [e["reason"] for e in sink.events(request.command_id, "permission_expired")]
    assert reasons == ["interrupted"]

    after = make_request(tmp_path, "say: next")
    assert run(manager, sink, after) is None
    assert sink.text_of(after.command_id) == "next"


def test_close_interrupts_a_running_command(make_manager, sink, tmp_path):
    manager = make_manager()
    request = make_request(tmp_path, "slow: 2000 50")
    manager.run(request)
    sink.wait_text(request.command_id)
    manager.close()
    assert sink.finishes[request.command_id]["code"] == "interrupted"
    assert claude_children() == []
    with pytest.raises(RuntimeError):
        manager.run(make_request(tmp_path, "say: closed"))


# --- conversations ----------------------------------------------------------------------


def test_follow_up_on_the_live_client_sees_the_first_prompt(manager, sink, tmp_path):
    first = make_request(tmp_path, "say: first")
    assert run(manager, sink, first) is None
    (pid,) = claude_children()

    second = make_request(tmp_path, "recall")
    assert run(manager, sink, second) is None
    assert "1. say: first" in sink.text_of(second.command_id)
    # Same Claude Code process, same Claude Code session.
    assert claude_children() == [pid]
    assert sink.init_event(first.command_id)["session_id"] == sink.init_event(second.command_id)["session_id"]


def test_resume_from_a_fresh_manager_replays_history(make_manager, sink, tmp_path):
    before = make_manager()
    first = make_request(tmp_path, "say: remember me")
    assert run(before, sink, first) is None
    claude_id = sink.init_event(first.command_id)["session_id"]
    before.close()  # the agent restarts

    after = make_manager()
    again = make_request(tmp_path, "recall", resume=claude_id)
    assert run(after, sink, again) is None
    assert "1. say: remember me" in sink.text_of(again.command_id)
    assert sink.init_event(again.command_id)["session_id"] == claude_id


def test_resume_of_an_unknown_session_starts_a_new_one(manager, sink, tmp_path):
    request = make_request(tmp_path, "recall", resume="11111111-2222-3333-4444-555555555555")
    assert run(manager, sink, request) is None
    (notice,) = [e for e in sink.events(request.command_id, "system") if e["subtype"] == "resume_failed"]
    assert "not found" in notice["message"]
    assert sink.text_of(request.command_id) == "No earlier prompts in this conversation."


def test_idle_timeout_closes_the_client_and_the_next_turn_resumes(make_manager, sink, tmp_path):
    manager = make_manager(idle_timeout=1.0)
    first = make_request(tmp_path, "say: before the nap")
    assert run(manager, sink, first) is None
    wait_until(lambda: not manager.live_sessions(), WAIT_S, "the idle session to close")
    wait_until(lambda: not claude_children(), WAIT_S, "Claude Code to exit")

    second = make_request(tmp_path, "recall")
    assert run(manager, sink, second) is None
    assert "1. say: before the nap" in sink.text_of(second.command_id)


def test_two_sessions_run_in_parallel(manager, sink, tmp_path):
    one = make_request(tmp_path, "slow: 40 50", session_id="one")
    two = make_request(tmp_path, "slow: 40 50", session_id="two")
    manager.run(one)
    manager.run(two)
    sink.wait_text(one.command_id)
    sink.wait_text(two.command_id)
    # Both stream before either ends: each takes 2 s, they overlap.
    assert sorted(manager.running()) == sorted([one.command_id, two.command_id])
    assert sink.wait_finish(one.command_id) is None
    assert sink.wait_finish(two.command_id) is None
    expected = " ".join(f"w{i}" for i in range(40))
    assert sink.text_of(one.command_id) == sink.text_of(two.command_id) == expected
    assert sink.init_event(one.command_id)["session_id"] != sink.init_event(two.command_id)["session_id"]


def test_permission_mode_and_cwd_follow_the_request(manager, sink, tmp_path):
    first = make_request(tmp_path, "write: auto.txt accepted", permission_mode="acceptEdits")
    assert run(manager, sink, first) is None
    assert (tmp_path / "auto.txt").read_text() == "accepted"
    assert sink.permissions == []
    assert sink.init_event(first.command_id)["permissionMode"] == "acceptEdits"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    second = make_request(elsewhere, "recall")
    assert run(manager, sink, second) is None
    assert sink.init_event(second.command_id)["cwd"] == str(elsewhere)
    assert sink.init_event(second.command_id)["permissionMode"] == "default"
    assert "1. write: auto.txt accepted" in sink.text_of(second.command_id)


# --- errors -------------------------------------------------------------------------------


def test_model_api_error_finishes_with_a_readable_message(manager, sink, tmp_path):
    request = make_request(tmp_path, "fail: 500 the stand-in is down")
    error = run(manager, sink, request)
    assert error["code"] == "claude_error"
    assert "model API" in error["message"] and "the stand-in is down" in error["message"]
    (result,) = sink.events(request.command_id, "result")
    assert result["is_error"] is True

    after = make_request(tmp_path, "say: recovered")
    assert run(manager, sink, after) is None
    assert sink.text_of(after.command_id) == "recovered"


def test_missing_credentials_finish_with_a_readable_message(make_manager, sink, tmp_path, claude_env):
    env = {k: v for k, v in claude_env.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    env["CLAUDE_CONFIG_DIR"] = str(tmp_path / "empty-config")
    manager = make_manager(env=env)
    if os.environ.get("ANTHROPIC_API_KEY"):
        pytest.skip("this machine has an ANTHROPIC_API_KEY in its environment")
    error = run(manager, sink, make_request(tmp_path, "say: hi"))
    assert error["code"] == "claude_error"
    assert "authenticate" in error["message"] and "login" in error["message"].lower()


def test_bad_cli_path_finishes_with_a_readable_message(make_manager, sink, tmp_path):
    manager = make_manager(cli_path=tmp_path / "no-such-claude")
    error = run(manager, sink, make_request(tmp_path, "say: hi"))
    assert error["code"] == "claude_error"
    assert "not found" in error["message"] and "no-such-claude" in error["message"]


def test_crashing_cli_finishes_with_its_stderr(make_manager, sink, tmp_path):
    fake = tmp_path / "claude"
    fake.write_text("#!/bin/sh\necho 'config file is broken' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    manager = make_manager(cli_path=fake)
    error = run(manager, sink, make_request(tmp_path, "say: hi"))
    assert error["code"] == "claude_error"
    assert "config file is broken" in error["message"]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"permission_mode": "bypassPermissions"}, "does not allow"),
        ({"permission_mode": "yolo"}, "Unknown permission mode"),
        ({"cwd": "/no/such/dir"}, "does not exist"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(manager, sink, tmp_path, fields, words):
    request = make_request(tmp_path, "say: hi")
    for name, value in fields.items():
        setattr(request, name, value)
    error = run(manager, sink, request)
    assert error["code"] == "bad_request" and words in error["message"]


def test_cli_killed_mid_turn_finishes_with_an_error_and_the_next_turn_resumes(manager, sink, tmp_path):
    first = make_request(tmp_path, "say: before the crash")
    assert run(manager, sink, first) is None
    slow = make_request(tmp_path, "slow: 2000 50")
    manager.run(slow)
    sink.wait_text(slow.command_id)
    (pid,) = claude_children()
    os.kill(pid, signal.SIGKILL)
    error = sink.wait_finish(slow.command_id)
    assert error["code"] == "claude_error" and "Claude Code" in error["message"]

    after = make_request(tmp_path, "recall")
    assert run(manager, sink, after) is None
    assert "1. say: before the crash" in sink.text_of(after.command_id)


def test_cli_that_died_while_idle_is_restarted_for_the_next_turn(manager, sink, tmp_path):
    first = make_request(tmp_path, "say: before the crash")
    assert run(manager, sink, first) is None
    (pid,) = claude_children()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: pid not in claude_children(), WAIT_S, "the killed CLI to be gone")

    after = make_request(tmp_path, "recall")
    assert run(manager, sink, after) is None
    assert "1. say: before the crash" in sink.text_of(after.command_id)
