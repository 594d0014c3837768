"""The bound on live Claude Code processes (max_warm_sessions), with the real CLI."""

from __future__ import annotations

import threading

import pytest

from tests.claude_fixtures import WAIT_S, claude_children, make_request, run
from tests.harness import wait_until

pytestmark = pytest.mark.integration


class ProcessCounter:
    """Counts this process's Claude Code children every few milliseconds, keeping the most seen."""

    def __init__(self) -> None:
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ProcessCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.most = max(self.most, len(claude_children()))


def test_least_recently_used_session_is_closed_and_resumes_on_its_next_prompt(make_manager, sink, tmp_path):
    manager = make_manager(max_warm_sessions=2)
    firsts = {}
    with ProcessCounter() as counter:
        for n in range(4):
            request = make_request(tmp_path, f"say: hello from session {n}", session_id=f"w{n}")
            assert run(manager, sink, request) is None
            firsts[n] = request
        assert sorted(manager.live_sessions()) == ["w2", "w3"]

        # A follow-up in a warm session uses its live Claude Code: no new process.
        warm = claude_children()
        follow_up = make_request(tmp_path, "recall", session_id="w3")
        assert run(manager, sink, follow_up) is None
        assert "1. say: hello from session 3" in sink.text_of(follow_up.command_id)
        assert claude_children() == warm

        # One in a closed session resumes its conversation; w2, now the least recently used, goes.
        again = make_request(tmp_path, "recall", session_id="w0")
        assert run(manager, sink, again) is None
        expected = "Earlier prompts in this conversation:\n1. say: hello from session 0"
        assert sink.text_of(again.command_id) == expected
        resumed = sink.init_event(again.command_id)["session_id"]
        assert resumed == sink.init_event(firsts[0].command_id)["session_id"]
        assert sorted(manager.live_sessions()) == ["w0", "w3"]
    assert len(claude_children()) == 2
    assert counter.most == 2


def test_a_session_waiting_on_a_permission_is_never_closed(make_manager, sink, tmp_path):
    manager = make_manager(max_warm_sessions=1)
    waiting = make_request(tmp_path, "write: kept.txt still here", session_id="asks")
    manager.run(waiting)
    ask = sink.wait_permission(waiting.command_id)

    other = make_request(tmp_path, "say: meanwhile", session_id="other")
    assert run(manager, sink, other) is None  # over the bound while both are busy
    assert manager.answer_permission("asks", ask.request_id, "allow")
    assert sink.wait_finish(waiting.command_id) is None
    assert (tmp_path / "kept.txt").read_text() == "still here"

    # Once the turns have ended the bound holds again: the idle one went.
    assert manager.live_sessions() == ["asks"]
    wait_until(lambda: len(claude_children()) == 1, WAIT_S, "the extra Claude Code to close")
