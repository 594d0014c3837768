import json

from agent_client.shrink import shrink


def test_small_events_pass_unchanged():
    event = {"type": "tool_use", "name": "Write", "input": {"file_path": "/a", "content": "x" * 100}}
    assert shrink(event) is event


def test_a_huge_write_input_is_cut_and_says_so():
    event = {"type": "tool_use", "name": "Write", "input": {"file_path": "/a", "content": "x" * 3_000_000}}
    small = shrink(event)
    assert len(json.dumps(small)) <= 200_000
    assert small["input"]["file_path"] == "/a"
    assert small["input"]["content"].endswith("more characters not shown]")


def test_many_long_strings_fall_back_to_a_marked_preview():
    event = {"parts": ["y" * 20_000 for _ in range(100)]}
    small = shrink(event)
    assert small["truncated"] is True and len(json.dumps(small)) <= 200_000
