"""Answers and tool calls of many megabytes through the real Claude Code CLI.

Claude Code sends each message as one JSON line: the whole answer, the whole
content of a file a Write call writes. The SDK's reader refused lines over
1 MiB by default, which ended such turns with claude_error.
"""

from __future__ import annotations

import pytest

from agent_client.claude_runner import MAX_TOOL_OUTPUT
from agent_client.standin import big_text
from tests.claude_fixtures import make_request, run

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
SIZES = pytest.mark.parametrize("size", [1 * MIB, 5 * MIB, 20 * MIB], ids=["1MiB", "5MiB", "20MiB"])
SLOW_S = 300.0  # a 20 MiB turn takes a few seconds here; leave room for a busy machine


@SIZES
def test_long_answer_arrives_whole(manager, sink, tmp_path, size):
    request = make_request(tmp_path, f"big: {size}")
    assert run(manager, sink, request, SLOW_S) is None
    assert sink.text_of(request.command_id) == big_text(size)
    (result,) = sink.events(request.command_id, "result")
    assert result["is_error"] is False


@SIZES
def test_large_file_written_by_a_tool_call(manager, sink, tmp_path, size):
    request = make_request(tmp_path, f"bigwrite: big.txt {size}", permission_mode="acceptEdits")
    assert run(manager, sink, request, SLOW_S) is None
    assert (tmp_path / "big.txt").read_text() == big_text(size)
    (call,) = sink.events(request.command_id, "tool_use")
    assert call["name"] == "Write" and len(call["input"]["content"]) == size
    (result,) = sink.events(request.command_id, "tool_result")
    assert result["is_error"] is False


@SIZES
def test_large_command_output(manager, sink, tmp_path, size):
    # 80-byte lines; Claude Code keeps output this long in a file and shows the model a preview.
    request = make_request(tmp_path, f"bash: seq -f %079g 1 {size // 80}")
    assert run(manager, sink, request, SLOW_S) is None
    (result,) = sink.events(request.command_id, "tool_result")
    assert result["is_error"] is False
    assert "000000000000000000001\n" in result["content"]
    assert len(result["content"]) <= MAX_TOOL_OUTPUT + 100


def test_message_over_the_limit_ends_the_turn_with_a_clear_error(make_manager, sink, tmp_path):
    manager = make_manager(max_message_bytes=MIB // 2)
    first = make_request(tmp_path, "say: a short one first")
    assert run(manager, sink, first) is None
    big = make_request(tmp_path, f"big: {MIB}")
    error = run(manager, sink, big)
    assert error["code"] == "claude_error"
    assert "limit of 0.5 MiB" in error["message"] and "--max-message-mb" in error["message"]
    assert sink.text_of(big.command_id) == big_text(MIB)  # the text had streamed

    after = make_request(tmp_path, "recall")
    assert run(manager, sink, after) is None
    assert "1. say: a short one first" in sink.text_of(after.command_id)
    claude_id = sink.init_event(first.command_id)["session_id"]
    assert sink.init_event(after.command_id)["session_id"] == claude_id
