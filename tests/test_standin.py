"""The stand-in Messages API, spoken to directly over HTTP."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from agent_client.standin import (
    BIG_DELTA,
    BIG_LINE,
    DEMO_DELAY_S,
    TOUR_FILE,
    TOUR_GREETING,
    TOUR_PROGRAM,
    StandInModel,
    TextPiece,
    _stream_text,
    _words,
    big_text,
    parse_script,
    plan_reply,
)
from tests.harness import wait_until

TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]
CWD_NOTE = "# Environment\n - Primary working directory: /srv/project\n"


def make_body(*messages: dict, tools: list | None = None, **extra) -> dict:
    """A Messages API request body in the shape Claude Code sends."""
    body = {
        "model": "claude-test",
        "max_tokens": 1000,
        "stream": True,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "tools": TOOLS if tools is None else tools,
        "messages": list(messages),
    }
    body.update(extra)
    return body


def user(*texts: str) -> dict:
    reminder = {"type": "text", "text": "<system-reminder>\nBe nice.\n</system-reminder>\n"}
    return {"role": "user", "content": [reminder, *({"type": "text", "text": t} for t in texts)]}


def request(url: str, method: str, path: str, body: dict | None = None):
    """Send one request; returns (status, headers, raw body bytes)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def stream(url: str, body: dict) -> list[tuple[str, dict]]:
    """POST /v1/messages and parse the server-sent events."""
    status, headers, raw = request(url, "POST", "/v1/messages?beta=true", body)
    assert status == 200, raw
    assert headers["Content-Type"] == "text/event-stream"
    events = []
    for chunk in raw.decode().split("\n\n"):
        if not chunk.strip():
            continue
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        events.append((lines["event"], data))
    return events


def text_of(events: list[tuple[str, dict]]) -> str:
    return "".join(
        d["delta"]["text"]
        for name, d in events
        if name == "content_block_delta" and d["delta"]["type"] == "text_delta"
    )


def tool_input_of(events: list[tuple[str, dict]]) -> dict:
    raw = "".join(
        d["delta"]["partial_json"]
        for name, d in events
        if name == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    return json.loads(raw)


def tool_block_of(events: list[tuple[str, dict]]) -> dict:
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    return next(block for block in starts if block["type"] == "tool_use")


def stop_reason(events: list[tuple[str, dict]]) -> str:
    return next(d["delta"]["stop_reason"] for n, d in events if n == "message_delta")


# --- the directive language --------------------------------------------------


def test_script_without_directives_is_demo_mode():
    assert parse_script("Hello, what can you do?") is None


def test_say_keeps_text_and_continuation_lines_exactly():
    (step,) = parse_script("say:  two spaces\n# Title\n\n- item  ")
    assert step.kind == "say"
    assert step.text == " two spaces\n# Title\n\n- item  "


@pytest.mark.parametrize(
    "line",
    ["deltas: many", "slow: 5", "paced: 5 0", "fail: 200", "tool: Read [1]", "bash:"]
    + ["big: lots", "big: 9 0", "bigwrite: x"],
)
def test_malformed_directive_explains_itself(line):
    (step,) = parse_script(line)
    assert step.kind == "say"
    assert line.split(":")[0] in step.text and "cannot read" in step.text


def test_plain_lines_of_a_script_are_literal_text():
    steps = parse_script("Intro line\nbash: ls\nOutro line")
    assert [(s.kind, s.text) for s in steps] == [
        ("say", "Intro line"),
        ("bash", "ls"),
        ("say", "Outro line"),
    ]


# --- streaming ---------------------------------------------------------------------


def test_say_streams_exact_text_in_small_deltas(standin):
    text = "Hello **world** — ünïcödé ✓ 🎉\n\n```py\nprint('hi')\n```"
    events = stream(standin.url, make_body(user("say: " + text)))
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names[1] == "content_block_start" and names[-3] == "content_block_stop"
    assert text_of(events) == text
    assert names.count("content_block_delta") > 5
    assert stop_reason(events) == "end_turn"
    assert events[0][1]["message"]["model"] == "claude-test"


def test_twenty_thousand_deltas_arrive_whole(standin):
    events = stream(standin.url, make_body(user("deltas: 20000")))
    deltas = [d for n, d in events if n == "content_block_delta"]
    assert len(deltas) == 20000
    assert text_of(events) == " ".join(f"w{i}" for i in range(20000))


def test_big_text_is_numbered_lines_cut_to_size():
    text = big_text(BIG_LINE * 3 + 5)
    lines = text.split("\n")
    assert len(text) == BIG_LINE * 3 + 5
    assert [line[:10] for line in lines[:3]] == ["000000000 ", "000000001 ", "000000002 "]
    assert all(len(line) == BIG_LINE - 1 for line in lines[:3])
    assert lines[3] == "00000"  # the fourth line, cut
    assert big_text(0) == ""


def test_big_streams_megabytes_in_kilobyte_deltas(standin):
    size = 2 * 1024 * 1024 + 7
    events = stream(standin.url, make_body(user(f"big: {size:_}")))
    deltas = [d["delta"]["text"] for n, d in events if n == "content_block_delta"]
    assert "".join(deltas) == big_text(size)
    assert {len(delta) for delta in deltas[:-1]} == {BIG_DELTA} and len(deltas[-1]) == 7


def test_big_takes_a_delta_size(standin):
    events = stream(standin.url, make_body(user("big: 300 7")))
    assert text_of(events) == big_text(300)
    assert len([n for n, _ in events if n == "content_block_delta"]) == 43


def test_bigwrite_writes_a_big_file_in_large_json_pieces(standin):
    body = make_body(
        user("bigwrite: big.txt 1000000"),
        {"role": "system", "content": [{"type": "text", "text": CWD_NOTE}]},
    )
    events = stream(standin.url, body)
    assert tool_block_of(events)["name"] == "Write"
    assert tool_input_of(events) == {"file_path": "/srv/project/big.txt", "content": big_text(1_000_000)}
    assert len([n for n, _ in events if n == "content_block_delta"]) < 2000


def test_slow_stream_is_paced(standin):
    started = time.monotonic()
    events = stream(standin.url, make_body(user("slow: 5 40")))
    assert text_of(events) == "w0 w1 w2 w3 w4"
    assert time.monotonic() - started >= 0.15


def test_paced_deltas_keep_their_schedule_and_carry_when_they_were_written(standin):
    before = time.time_ns() // 1000
    events = stream(standin.url, make_body(user("paced: 6 50")))
    after = time.time_ns() // 1000
    words = text_of(events).split(" ")
    assert [word.split("@")[0] for word in words] == [f"w{i}" for i in range(6)]
    stamps = [int(word.split("@")[1]) for word in words]
    assert before <= stamps[0] and stamps[-1] <= after
    # Delta i is not written before its slot, i/50 s after the first.
    assert all(stamps[i] - stamps[0] >= i * 20_000 - 1_000 for i in range(6))


class _Recorder:
    """Both the event writer and the stop event of _stream_text: logs what it is asked to do."""

    def __init__(self):
        self.log = []

    def event(self, name, data):
        text = data.get("delta", {}).get("text")
        self.log.append(("event", text.split("@")[0]) if text else ("event", name))

    def flush(self):
        self.log.append(("flush",))

    def wait(self, timeout):
        self.log.append(("wait",))
        return False


def test_a_paced_delta_is_flushed_as_soon_as_it_is_stamped():
    recorder = _Recorder()
    _stream_text(recorder, 0, [TextPiece(_words(3), 0.0, stamped=True)], recorder)
    deltas = [
        i for i, entry in enumerate(recorder.log) if entry[0] == "event" and entry[1].strip().startswith("w")
    ]
    assert len(deltas) == 3
    # Held in the buffer until the next slot, its stamp would be one interval early.
    assert all(recorder.log[i + 1] == ("flush",) for i in deltas)


def test_pieces_before_a_tool_call_share_one_text_block(standin):
    events = stream(standin.url, make_body(user("say: first\ndeltas: 2\nbash: ls")))
    assert text_of(events) == "first\n\nw0 w1"
    assert tool_block_of(events)["name"] == "Bash"


def test_bash_calls_the_tool_then_reports_its_output(standin):
    first = stream(standin.url, make_body(user("bash: echo hi")))
    assert stop_reason(first) == "tool_use"
    block = tool_block_of(first)
    assert block["name"] == "Bash"
    assert tool_input_of(first)["command"] == "echo hi"

    call = {"role": "assistant", "content": [{**block, "input": tool_input_of(first)}]}
    result = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": block["id"], "content": "hi"}],
    }
    second = stream(standin.url, make_body(user("bash: echo hi"), call, result))
    assert stop_reason(second) == "end_turn"
    assert "The Bash tool returned" in text_of(second)
    assert "hi" in text_of(second)


def test_script_goes_on_after_the_tool_result(standin):
    prompt = "bash: false\nsay: after the tool"
    first = stream(standin.url, make_body(user(prompt)))
    block = {**tool_block_of(first), "input": tool_input_of(first)}
    failed = {"type": "tool_result", "tool_use_id": block["id"], "is_error": True}
    second = stream(
        standin.url,
        make_body(
            user(prompt),
            {"role": "assistant", "content": [block]},
            {"role": "user", "content": [{**failed, "content": [{"type": "text", "text": "no"}]}]},
        ),
    )
    assert text_of(second) == "The Bash tool failed:\n\n```\nno\n```\n\nafter the tool"


def test_write_uses_the_working_directory_from_the_request(standin):
    body = make_body(
        user("write: notes/a.txt line one\nline two"),
        {"role": "system", "content": [{"type": "text", "text": CWD_NOTE}]},
    )
    events = stream(standin.url, body)
    assert tool_block_of(events)["name"] == "Write"
    assert tool_input_of(events) == {
        "file_path": "/srv/project/notes/a.txt",
        "content": "line one\nline two",
    }


def test_tool_directive_calls_any_tool(standin):
    events = stream(standin.url, make_body(user('tool: Read {"file_path": "/etc/hostname"}')))
    assert tool_block_of(events)["name"] == "Read"
    assert tool_input_of(events) == {"file_path": "/etc/hostname"}


def test_recall_lists_earlier_prompts(standin):
    # Claude Code merges a prompt after a failed turn into the same message.
    body = make_body(
        user("say: one"),
        {"role": "assistant", "content": [{"type": "text", "text": "one"}]},
        user("fail: 500\n", "recall"),
    )
    text = text_of(stream(standin.url, body))
    assert text == "Earlier prompts in this conversation:\n1. say: one\n2. fail: 500"


def test_recall_without_history(standin):
    assert text_of(stream(standin.url, make_body(user("recall")))) == (
        "No earlier prompts in this conversation."
    )


def test_prompt_after_interrupted_tool_call_is_a_new_script(standin):
    block = {"type": "tool_use", "id": "toolu_1", "name": "Write", "input": {}}
    body = make_body(
        user("write: a.txt x"),
        {"role": "assistant", "content": [block]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rejected"},
                {"type": "text", "text": "[Request interrupted by user for tool use]"},
                {"type": "text", "text": "say: next"},
            ],
        },
    )
    assert text_of(stream(standin.url, body)) == "next"


def answered(prompt: str) -> list[dict]:
    """A finished earlier turn of the conversation: the prompt and a text answer."""
    return [user(prompt), {"role": "assistant", "content": [{"type": "text", "text": "An answer."}]}]


def test_a_second_ordinary_prompt_gets_the_short_demo_answer_not_the_tour_again(standin):
    events = stream(standin.url, make_body(*answered("What is Tether?"), user("And what else?")))
    text = text_of(events)
    assert "Tether's demo model" in text and "ANTHROPIC_API_KEY" in text
    assert "> And what else?" in text
    assert "`say: TEXT`" in text and "New session" in text
    assert stop_reason(events) == "end_turn"


# --- the demo tour: an ordinary first prompt -----------------------------------------

TOUR_TOOLS = [{"name": name, "input_schema": {"type": "object"}} for name in ("Bash", "Write")]
CWD_MESSAGE = {"role": "system", "content": CWD_NOTE}


def tool_turn(name: str, result: str, is_error: bool = False) -> list[dict]:
    """An assistant tool call of the tour and the user message with its result."""
    use_id = f"toolu_{name.lower()}"
    call = {"role": "assistant", "content": [{"type": "tool_use", "id": use_id, "name": name, "input": {}}]}
    block = {"type": "tool_result", "tool_use_id": use_id, "content": [{"type": "text", "text": result}]}
    return [call, {"role": "user", "content": [block | ({"is_error": True} if is_error else {})]}]


def tour_reply(*turns: list[dict], prompt: str = "write a hello world script"):
    """The tour's plan after the given tool turns, as Claude Code would ask for it."""
    messages = [user(prompt), *(m for turn in turns for m in turn), CWD_MESSAGE]
    return plan_reply(make_body(*messages, tools=TOUR_TOOLS))


def reply_text(reply) -> str:
    return "".join(chunk for piece in reply.pieces for chunk in piece.chunks)


def test_the_tour_says_it_is_a_demo_then_writes_a_file_in_the_working_directory():
    reply = tour_reply(prompt="what can you do?")
    text = reply_text(reply)
    assert "Tether's demo model" in text and "not Claude" in text and "“what can you do?”" in text
    assert "ANTHROPIC_API_KEY" in text and "log in to Claude Code" in text
    assert reply.tool.name == "Write"
    assert reply.tool.input == {"file_path": f"/srv/project/{TOUR_FILE}", "content": TOUR_PROGRAM}
    assert all(piece.delay == DEMO_DELAY_S for piece in reply.pieces if piece.chunks)


def test_after_the_write_the_tour_runs_the_file_with_bash():
    reply = tour_reply(tool_turn("Write", "File created successfully"))
    assert reply.tool.name == "Bash" and reply.tool.input["command"] == f"python3 {TOUR_FILE}"
    assert f"`{TOUR_FILE}` is written" in reply_text(reply)


def test_after_the_run_the_tour_shows_the_output_and_what_to_try_next():
    output = f"{TOUR_GREETING}\n(printed by the run)"
    reply = tour_reply(tool_turn("Write", "File created successfully"), tool_turn("Bash", output))
    text = reply_text(reply)
    assert reply.tool is None
    assert f"```text\n{output}\n```" in text
    assert "**Files** and **Changes**" in text and "**Stop**" in text and "**New session**" in text
    assert all(piece.delay == DEMO_DELAY_S for piece in reply.pieces if piece.chunks)


def test_a_denied_write_ends_the_tour_without_running_anything():
    reply = tour_reply(tool_turn("Write", "The user denied this tool use.", is_error=True))
    text = reply_text(reply)
    assert reply.tool is None
    assert f"did not write `{TOUR_FILE}`" in text and "The user denied this tool use." in text
    assert "skip the Bash step" in text and "nothing changed" in text


def test_a_failed_run_is_reported_as_such():
    write = tool_turn("Write", "File created successfully")
    reply = tour_reply(write, tool_turn("Bash", "The user denied this tool use.", is_error=True))
    text = reply_text(reply)
    assert reply.tool is None
    assert "did not run as planned" in text and "The user denied this tool use." in text
    assert "printed:" not in text


def test_the_tour_over_http_streams_text_then_the_write_call(standin):
    events = stream(standin.url, make_body(user("hello"), CWD_MESSAGE, tools=TOUR_TOOLS))
    assert "Tether's demo model" in text_of(events)
    assert tool_block_of(events)["name"] == "Write"
    assert tool_input_of(events)["content"] == TOUR_PROGRAM
    assert stop_reason(events) == "tool_use"


def test_directives_after_an_ordinary_prompt_still_run_as_scripted(standin):
    assert text_of(stream(standin.url, make_body(*answered("hello"), user("say: scripted")))) == "scripted"


@pytest.mark.parametrize(("status", "kind"), [(400, "invalid_request_error"), (529, "overloaded_error")])
def test_fail_answers_an_anthropic_error(standin, status, kind):
    body = make_body(user(f"fail: {status} scripted trouble"))
    got, headers, raw = request(standin.url, "POST", "/v1/messages?beta=true", body)
    assert got == status
    assert headers["x-should-retry"] == "false"
    error = json.loads(raw)
    assert error["type"] == "error"
    assert error["error"] == {"type": kind, "message": "scripted trouble"}


def test_side_request_without_tools_gets_a_title(standin):
    plain = stream(standin.url, make_body(user("Fix the login page bug"), tools=[]))
    assert text_of(plain) == "Fix the login page bug"

    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    fmt = {"format": {"type": "json_schema", "schema": schema}}
    titled = stream(standin.url, make_body(user("Fix it"), tools=[], output_config=fmt))
    assert json.loads(text_of(titled)) == {"title": "Fix it"}


def test_non_streaming_request_gets_a_message(standin):
    status, _, raw = request(standin.url, "POST", "/v1/messages", make_body(user("say: plain"), stream=False))
    assert status == 200
    message = json.loads(raw)
    assert message["content"] == [{"type": "text", "text": "plain"}]
    assert message["stop_reason"] == "end_turn"


def test_other_paths(standin):
    status, _, raw = request(standin.url, "POST", "/v1/messages/count_tokens", make_body())
    assert status == 200 and json.loads(raw)["input_tokens"] > 0
    status, _, raw = request(standin.url, "GET", "/v1/models")
    assert status == 404 and json.loads(raw)["error"]["type"] == "not_found_error"
    status, _, _ = request(standin.url, "GET", "/")
    assert status == 200
    status, _, raw = request(standin.url, "POST", "/v1/messages", None)
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"


def test_requests_are_recorded():
    with StandInModel() as model:
        stream(model.url, make_body(user("say: recorded")))
        assert len(model.requests) == 1
        assert model.requests[0]["messages"][0]["content"][1]["text"] == "say: recorded"


def test_keep_alive_connection_serves_several_requests(standin):
    parts = urlsplit(standin.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        for word in ("one", "two"):
            conn.request("POST", "/v1/messages", body=json.dumps(make_body(user(f"say: {word}"))))
            response = conn.getresponse()
            assert word in response.read().decode()
    finally:
        conn.close()


def wait_for_no_stream(model: StandInModel) -> None:
    # The handler's thread counts down after the client has read the end.
    wait_until(lambda: model.streaming == 0, 10, "the stand-in's answers to end")


def test_streaming_counts_answers_until_their_client_goes_away():
    with StandInModel() as model:
        parts = urlsplit(model.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request("POST", "/v1/messages", body=json.dumps(make_body(user("slow: 1000 20"))))
        response = conn.getresponse()
        response.read(200)  # the answer has started
        assert model.streaming == 1
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        wait_for_no_stream(model)
        stream(model.url, make_body(user("say: done")))
        wait_for_no_stream(model)


def test_stop_cuts_a_slow_stream_short():
    model = StandInModel()
    model.start()
    outcome: dict = {}

    def read_forever() -> None:
        try:
            outcome["events"] = stream(model.url, make_body(user("slow: 1000 1000")))
        except Exception as exc:  # the cut shows up as an incomplete read
            outcome["error"] = exc

    reader = threading.Thread(target=read_forever)
    reader.start()
    wait_until(lambda: model.requests, 10, "the request to arrive")  # a plain list: no hook to wait on
    model.stop()
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert "error" in outcome or "message_stop" not in [n for n, _ in outcome["events"]]
