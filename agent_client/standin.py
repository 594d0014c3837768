"""A scripted stand-in for the Anthropic Messages API.

Claude Code talks to whatever ``ANTHROPIC_BASE_URL`` names. Pointing it at this
server lets the tests, and Tether's keyless demo mode, run the real CLI without
the internet and without an API key. Only the standard library is used.

What the "model" answers is scripted by the user's prompt (the last message whose
role is ``user`` and that is not a tool result). One directive per line:

``say: TEXT``
    Streams exactly TEXT, split into deltas of a few characters. Lines that
    follow and are not directives continue TEXT (joined with newlines), so a
    multi-line Markdown answer can be scripted byte for byte.
``deltas: N``
    Streams N text deltas as fast as possible: ``w0``, then `` w1``, `` w2`` …
    The whole text is the words ``w0`` … ``w{N-1}`` separated by single spaces.
``slow: N MS``
    The same N deltas, with MS milliseconds between them.
``big: SIZE [DELTA]``
    Streams SIZE characters of ``big_text(SIZE)`` (numbered lines of 80
    characters) in deltas of DELTA characters (default 1024), as fast as
    possible: answers of many megabytes (``big: 20_000_000``).
``paced: N RATE``
    The same N deltas at RATE per second on a fixed schedule (delta i is due
    i/RATE seconds after the first, however long writing took), each stamped
    with the wall-clock time it was written: ``w0@T``, `` w1@T`` … where T is
    microseconds since the epoch. For measuring how long a delta takes to reach
    a screen.
``bash: COMMAND``
    Calls the Bash tool with COMMAND.
``write: PATH CONTENT``
    Calls the Write tool. A relative PATH is made absolute with the working
    directory Claude Code reports (``Primary working directory: …``). Lines
    that follow and are not directives continue CONTENT.
``bigwrite: PATH SIZE``
    Calls the Write tool with SIZE characters of ``big_text(SIZE)`` as the
    content: a tool call (and result) of many megabytes.
``tool: NAME JSON``
    Calls any tool NAME with the JSON object as its input.
``recall``
    Answers with the list of the earlier user prompts of the conversation.
``fail: STATUS [MESSAGE]``
    Answers with HTTP error STATUS and an Anthropic-shaped error body.

Other lines of a script are literal text: they continue the ``say:`` or
``write:`` above them, or stand as text of their own.

Text directives before a tool directive stream as one text block (pieces joined
by a blank line) in the same answer as the tool call. After the tool's result
comes back, the next answer starts with a report of that result (its output, or
its error such as a denied permission) and goes on with the directives that
follow.

A prompt with no directive at all is an ordinary request, which a scripted model
cannot answer; the first one of a conversation gets the demo tour instead, a short
scripted run through the real Claude Code, planned anew on each request from the
tool calls and results that came back since the prompt:

1. It says that this is Tether's demo model, not Claude, and how to connect a
   real model, then writes ``tether_hello.py`` (``TOUR_FILE``; a name of Tether's
   own, so a user's ``hello.py`` is never overwritten) with the Write tool. In the
   default permission mode Claude Code asks first: the page shows a permission prompt.
2. Once the Write succeeded, it runs ``python3 tether_hello.py`` with the Bash tool.
3. Then it shows what the program printed and closes with what to try next.

A Write that did not happen (denied, or failed) ends the tour there: it says so,
and there is no Bash run of a missing file; a Bash run denied or failing is
reported the same way. Later ordinary prompts of the same conversation get the
short demo answer instead of the tour again: it says what this is, echoes the
prompt and lists the directives (a new session shows the tour again). Demo text
trickles in, ``DEMO_DELAY_S`` a delta, like a real model's.

Side requests that carry no tools (Claude Code's session title) get a short title.

A prompt sent with attachments is one user message of content blocks: images,
text files (``<attached_file …>`` blocks), then the prompt's text. Those blocks,
and the ``[Image: source: …]`` notes Claude Code adds after them, are not read as
prompts. Every request body is recorded (the last ``RECORDED_REQUESTS``), so tests
can see which model was asked and which content blocks arrived
(``StandInModel.request_for``, ``prompt_blocks``).

Run ``python -m agent_client.standin --port 8765`` to try it by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("tether.standin")

HOST = "127.0.0.1"
DEFAULT_MODEL = "tether-demo"
SAY_CHUNK = 4  # characters per text delta: small, so streaming is visible
JSON_CHUNK = 16  # characters per input_json_delta
DEMO_DELAY_S = 0.01  # demo answers trickle in like a real model's
FLUSH_BYTES = 64 * 1024  # batch fast streams into large writes
BIG_DELTA = 1024  # characters per delta of a big: answer
BIG_LINE = 80  # characters per line of big_text, newline included

_DIRECTIVE = re.compile(r"^(say|deltas|slow|paced|big|bash|write|bigwrite|tool|fail):(.*)$")
_RECALL = re.compile(r"^recall\s*$")
_CWD = re.compile(r"Primary working directory: ([^\n]+)")
_REMINDER = "<system-reminder>"
_INTERRUPTED = "[Request interrupted by user"
# Text blocks of a user message that are not the user's prompt: Claude Code's reminders,
# its interruption marker and notes on where it saved an attached image, and attached files.
_NOT_PROMPTS = (_REMINDER, _INTERRUPTED, "[Image: source:", "<attached_file")
RECORDED_REQUESTS = 200  # request bodies kept (a conversation with images repeats them in each)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

DEMO_ANSWER = """\
This is still **Tether's demo model**, a scripted stand-in for Claude. \
No real model is connected, so I can only echo what you sent:

> {quoted}

Claude Code itself is real: tools, permissions and sessions work as usual. \
To script an answer, start a line with a directive:

- `say: TEXT` streams TEXT back
- `deltas: N` streams N small pieces as fast as possible
- `slow: N MS` streams N pieces, MS milliseconds apart
- `big: SIZE` streams SIZE characters of numbered lines, in 1 KB pieces
- `bash: COMMAND` runs a shell command through the Bash tool
- `write: PATH CONTENT` writes a file through the Write tool
- `bigwrite: PATH SIZE` writes SIZE characters of numbered lines to a file
- `tool: NAME JSON` calls any tool
- `recall` lists your earlier prompts in this conversation
- `fail: STATUS` answers with an API error

The tour ran for this session's first message; a **New session** shows it again. \
{connect}"""

# How to leave the demo, as README.md and `flask --app wsgi dev` (app/devrun.py) have it.
CONNECT_A_MODEL = (
    "To talk to Claude, set `ANTHROPIC_API_KEY` on the agent's machine, or log in to Claude Code "
    "there, and start `make run` again (an agent you started yourself: without `--demo`)."
)

# The demo tour (see the module docstring): what it writes, runs and says. Outputs are
# fenced as plain text, so the page does not guess a language and colour a greeting.
TOUR_FILE = "tether_hello.py"
TOUR_GREETING = "Hello from Tether! Claude Code wrote this file and ran it."
TOUR_PROGRAM = f'print("{TOUR_GREETING}")\n'
TOUR_RUN = f"python3 {TOUR_FILE}"

TOUR_INTRO = """\
Hi! This is **Tether's demo model**: a scripted stand-in, not Claude, so it cannot \
really answer “{asked}”. {connect}

Claude Code itself is real here, so here is a short tour of what Tether shows. \
First I write `{file}` with Claude Code's **Write** tool: Claude Code asks your \
permission before it changes a file, so **Allow** it below."""

TOUR_WRITTEN = """\
`{file}` is written. Now I run it with the **Bash** tool (Claude Code asks before \
running a command, too)."""

TOUR_RAN = """\
`{command}` printed:

```text
{output}
```"""

TOUR_NOT_WRITTEN = """\
Claude Code did not write `{file}`:

```text
{output}
```

So there is nothing to run, and I skip the Bash step."""

TOUR_NOT_RUN = """\
`{command}` did not run as planned:

```text
{output}
```"""

TOUR_NEXT = """\
That was the tour. Next, try:

- **Files** and **Changes**: {changed}
- **Stop**: send `slow: 300 50`, a slow answer, and stop it.
- **Sessions**: each conversation is kept; **New session** starts another (and this tour again).
- Directives script an answer: `say: TEXT`, `bash: COMMAND`, `write: PATH CONTENT`. \
Send another message here for the whole list."""

TOUR_CHANGED = f"`{TOUR_FILE}` is there now."
TOUR_UNCHANGED = "nothing changed this time."


# ---------------------------------------------------------------------------
# What to answer: pure functions from a request body to a reply.


@dataclass
class Step:
    """One directive of a script."""

    kind: str  # say, deltas, big, bash, write, tool, recall, fail
    text: str = ""  # say text, write content, bash command, error message
    count: int = 0  # deltas: how many; big: characters; fail: the HTTP status
    delay: float = 0.0  # seconds between deltas
    path: str = ""  # write: the file; tool: the tool name
    data: dict[str, Any] = field(default_factory=dict)  # tool: its input


@dataclass
class TextPiece:
    """Text streamed as a sequence of deltas, optionally paced."""

    chunks: Iterable[str]
    delay: float = 0.0
    stamped: bool = False  # paced: delay is the schedule's interval, each delta ends with @<epoch us>


@dataclass
class ToolCall:
    """A tool_use block."""

    name: str
    input: dict[str, Any]


@dataclass
class Reply:
    """One streamed answer: text pieces (one text block), then maybe a tool call."""

    pieces: list[TextPiece]
    tool: ToolCall | None = None


@dataclass
class ErrorReply:
    """An HTTP error answer."""

    status: int
    message: str


def plan_reply(body: dict[str, Any]) -> Reply | ErrorReply:
    """Decide the answer to one ``POST /v1/messages`` request body."""
    messages = body.get("messages") or []
    if not body.get("tools"):
        return _title_reply(body, messages)
    at = _prompt_index(messages)
    if at is None:
        return Reply([_text("I did not find a prompt in this conversation.")])
    *same_message, prompt = _prompt_texts(messages[at])
    earlier = [text for message in messages[:at] for text in _prompt_texts(message)]
    earlier += same_message
    steps = parse_script(prompt)
    if steps is None:
        if any(parse_script(text) is None for text in earlier):
            return Reply([_demo_piece(_demo_text(prompt))])
        return _tour_reply(prompt, _tool_exchanges(messages, at), _working_dir(body))
    done = _tool_calls_since(messages, at)
    segments = _segments(steps)
    if done >= len(segments):
        return Reply([_text("Done.")])
    pieces = [_text(_tool_report(messages))] if done else []
    return _build_reply(segments[done], pieces, earlier, _working_dir(body))


def parse_script(prompt: str) -> list[Step] | None:
    """Parse a prompt into steps; None when it holds no directive (demo mode)."""
    lines = prompt.splitlines()
    if not any(_DIRECTIVE.match(line) or _RECALL.match(line) for line in lines):
        return None
    while lines and not lines[-1].strip():
        lines.pop()
    steps: list[Step] = []
    for line in lines:
        if _RECALL.match(line):
            steps.append(Step("recall"))
        elif match := _DIRECTIVE.match(line):
            steps.append(_parse_directive(match.group(1), match.group(2)))
        elif steps and steps[-1].kind in ("say", "write"):
            # A plain line continues the text of the say: or write: above it.
            steps[-1].text += "\n" + line
        elif steps or line.strip():
            steps.append(Step("say", text=line))
    return steps


def _parse_directive(kind: str, arg: str) -> Step:
    """Turn one directive line into a Step; a malformed one says what is wrong."""
    # say keeps its text exactly, bar the one space that follows the colon.
    if kind == "say":
        return Step("say", text=arg[1:] if arg.startswith(" ") else arg)
    arg = arg.strip()
    try:
        if kind == "deltas":
            return Step("deltas", count=_natural(arg))
        if kind == "slow":
            count, ms = arg.split()
            return Step("deltas", count=_natural(count), delay=_natural(ms) / 1000)
        if kind == "big":
            size, _, delta = arg.partition(" ")
            return Step("big", count=_natural(size), data={"delta": _positive(delta or str(BIG_DELTA))})
        if kind == "paced":
            count, rate = arg.split()
            if float(rate) <= 0:
                raise ValueError("the rate must be above 0")
            return Step("paced", count=_natural(count), delay=1 / float(rate))
        if kind == "bash":
            return Step("bash", text=_nonempty(arg))
        if kind == "write":
            path, _, content = arg.partition(" ")
            return Step("write", path=_nonempty(path), text=content)
        if kind == "bigwrite":
            path, size = arg.split()
            return Step("write", path=path, text=big_text(_natural(size)))
        if kind == "tool":
            name, _, raw = arg.partition(" ")
            data = json.loads(raw or "{}")
            if not isinstance(data, dict):
                raise ValueError("the input must be a JSON object")
            return Step("tool", path=_nonempty(name), data=data)
        status, _, message = arg.partition(" ")
        if not 400 <= int(status) <= 599:
            raise ValueError("the status must be 400 to 599")
        return Step("fail", count=int(status), text=message)
    except ValueError as exc:
        return Step("say", text=f"(stand-in: cannot read `{kind}:{arg}`: {exc})")


def _natural(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("a number of 0 or more is needed")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("a number of 1 or more is needed")
    return value


def _nonempty(text: str) -> str:
    if not text:
        raise ValueError("an argument is needed")
    return text


def _segments(steps: list[Step]) -> list[list[Step]]:
    """Split a script into answers: each tool call ends one; the rest is the last."""
    segments: list[list[Step]] = [[]]
    for step in steps:
        segments[-1].append(step)
        if step.kind in ("bash", "write", "tool"):
            segments.append([])
    return segments


def _build_reply(
    segment: list[Step], pieces: list[TextPiece], earlier: list[str], cwd: str | None
) -> Reply | ErrorReply:
    tool = None
    for step in segment:
        if step.kind == "fail":
            return ErrorReply(step.count, step.text)
        if step.kind == "say":
            pieces.append(_text(step.text))
        elif step.kind == "deltas":
            pieces.append(TextPiece(_words(step.count), step.delay))
        elif step.kind == "big":
            pieces.append(TextPiece(_big_chunks(step.count, step.data["delta"])))
        elif step.kind == "paced":
            pieces.append(TextPiece(_words(step.count), step.delay, stamped=True))
        elif step.kind == "recall":
            pieces.append(_text(_recall_text(earlier)))
        else:
            tool = _tool_call(step, cwd)
    if not pieces and tool is None:
        pieces.append(_text("Done."))
    return Reply(_join(pieces), tool)


def _tool_call(step: Step, cwd: str | None) -> ToolCall:
    if step.kind == "bash":
        return ToolCall("Bash", {"command": step.text, "description": "Run a scripted command"})
    if step.kind == "write":
        path = step.path
        if cwd and not path.startswith("/"):
            path = cwd.rstrip("/") + "/" + path
        return ToolCall("Write", {"file_path": path, "content": step.text})
    return ToolCall(step.path, step.data)


def _join(pieces: list[TextPiece]) -> list[TextPiece]:
    """Separate the pieces of one text block by a blank line."""
    joined: list[TextPiece] = []
    for piece in pieces:
        if joined:
            joined.append(TextPiece(["\n\n"]))
        joined.append(piece)
    return joined


def _text(text: str) -> TextPiece:
    return TextPiece(_chunks(text))


def _chunks(text: str) -> list[str]:
    """Split text into deltas whose concatenation is exactly the text."""
    return [text[i : i + SAY_CHUNK] for i in range(0, len(text), SAY_CHUNK)]


def _words(count: int) -> Iterator[str]:
    """Deltas w0, ' w1', ' w2' …: generated lazily, so 20,000 cost nothing up front."""
    for i in range(count):
        yield f"w{i}" if i == 0 else f" w{i}"


def big_text(size: int) -> str:
    """The text of ``big: SIZE``: numbered lines of BIG_LINE characters, cut to SIZE.

    Each line says where it is, so a lost, doubled or reordered piece shows.
    """
    filler = "abcdefghijklmnopqrstuvwxyz" * 4
    lines = (size + BIG_LINE - 1) // BIG_LINE
    body = "".join(f"{n:09d} {filler[: BIG_LINE - 11]}\n" for n in range(lines))
    return body[:size]


def _big_chunks(size: int, delta: int) -> Iterator[str]:
    text = big_text(size)
    for start in range(0, size, delta):
        yield text[start : start + delta]


# --- reading the conversation ---------------------------------------------


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or [] if isinstance(block, dict)]


def _has_tool_result(message: dict[str, Any]) -> bool:
    return any(block.get("type") == "tool_result" for block in _blocks(message))


def _prompt_texts(message: dict[str, Any]) -> list[str]:
    """The user's own prompts in a message, minus Claude Code's reminders and markers.

    Claude Code merges consecutive user turns into one message, one text block per
    prompt: a prompt after a failed turn joins the earlier prompt, and one after an
    interrupted tool call joins that call's tool_result. So each block is a prompt.
    """
    if message.get("role") != "user":
        return []
    texts = (block.get("text") or "" for block in _blocks(message) if block.get("type") == "text")
    return [text for text in texts if text.strip() and not text.lstrip().startswith(_NOT_PROMPTS)]


def _prompt_index(messages: list[dict[str, Any]]) -> int | None:
    """Index of the message holding the prompt this answer belongs to."""
    for index in range(len(messages) - 1, -1, -1):
        if _prompt_texts(messages[index]):
            return index
    return None


def prompt_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The content blocks of the user message that holds a request's prompt (with its attachments)."""
    messages = body.get("messages") or []
    at = _prompt_index(messages)
    return [] if at is None else _blocks(messages[at])


def _tool_calls_since(messages: list[dict[str, Any]], start: int) -> int:
    """How many tool calls the script has made since its prompt."""
    return sum(
        1
        for message in messages[start + 1 :]
        if message.get("role") == "assistant"
        for block in _blocks(message)
        if block.get("type") == "tool_use"
    )


def _tool_report(messages: list[dict[str, Any]]) -> str:
    """Say what the last tool call returned, as the next answer's opening."""
    names = {
        block.get("id"): block.get("name")
        for message in messages
        if message.get("role") == "assistant"
        for block in _blocks(message)
        if block.get("type") == "tool_use"
    }
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    for block in _blocks(last_user):
        if block.get("type") == "tool_result":
            name = names.get(block.get("tool_use_id"), "tool")
            verb = "failed" if block.get("is_error") else "returned"
            output = _result_text(block.get("content")) or "(no output)"
            return f"The {name} tool {verb}:\n\n```\n{output}\n```"
    return "The tool gave no result."


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [b.get("text", "") for b in content or [] if isinstance(b, dict)]
    return "\n".join(part for part in parts if part)


def _recall_text(prompts: list[str]) -> str:
    if not prompts:
        return "No earlier prompts in this conversation."
    lines = [f"{n}. {p.strip().replace(chr(10), ' / ')}" for n, p in enumerate(prompts, 1)]
    return "Earlier prompts in this conversation:\n" + "\n".join(lines)


def _working_dir(body: dict[str, Any]) -> str | None:
    """Claude Code names its working directory in a system block or message."""
    for text in _all_texts(body):
        if match := _CWD.search(text):
            return match.group(1).strip()
    return None


def _all_texts(body: dict[str, Any]) -> Iterator[str]:
    system = body.get("system")
    if isinstance(system, str):
        yield system
    elif isinstance(system, list):
        yield from (b.get("text", "") for b in system if isinstance(b, dict))
    for message in body.get("messages") or []:
        for block in _blocks(message):
            if block.get("type") == "text":
                yield block.get("text", "")


def _demo_text(prompt: str) -> str:
    quoted = "\n> ".join(prompt.strip().splitlines()) or "(an empty prompt)"
    return DEMO_ANSWER.format(quoted=quoted, connect=CONNECT_A_MODEL)


def _demo_piece(text: str) -> TextPiece:
    """Demo text trickles in like a real model's."""
    return TextPiece(_chunks(text), DEMO_DELAY_S)


# --- the demo tour ---------------------------------------------------------


@dataclass
class ToolExchange:
    """A tool call of this answer's turn and the result that came back for it."""

    name: str
    result: dict[str, Any] | None  # the tool_result block; None if none came back

    @property
    def succeeded(self) -> bool:
        return self.result is not None and not self.result.get("is_error")

    @property
    def output(self) -> str:
        content = None if self.result is None else self.result.get("content")
        return _result_text(content).strip() or "(no output)"


def _tool_exchanges(messages: list[dict[str, Any]], start: int) -> list[ToolExchange]:
    """The tool calls made since the prompt, in order, each with its result."""
    results = {
        block.get("tool_use_id"): block
        for message in messages[start:]
        if message.get("role") == "user"
        for block in _blocks(message)
        if block.get("type") == "tool_result"
    }
    return [
        ToolExchange(str(block.get("name")), results.get(block.get("id")))
        for message in messages[start + 1 :]
        if message.get("role") == "assistant"
        for block in _blocks(message)
        if block.get("type") == "tool_use"
    ]


def _tour_reply(prompt: str, done: list[ToolExchange], cwd: str | None) -> Reply:
    """The tour's next answer, from the tool calls made so far and their results."""
    if not done:
        intro = TOUR_INTRO.format(asked=_first_line(prompt), connect=CONNECT_A_MODEL, file=TOUR_FILE)
        return Reply([_demo_piece(intro)], _tool_call(Step("write", path=TOUR_FILE, text=TOUR_PROGRAM), cwd))
    last = done[-1]
    if last.name == "Write" and last.succeeded and len(done) == 1:
        run = ToolCall("Bash", {"command": TOUR_RUN, "description": "Run the demo's hello script"})
        return Reply([_demo_piece(TOUR_WRITTEN.format(file=TOUR_FILE))], run)
    written = done[0].name == "Write" and done[0].succeeded
    if not written:
        report = TOUR_NOT_WRITTEN.format(file=TOUR_FILE, output=done[0].output)
    elif last.succeeded:
        report = TOUR_RAN.format(command=TOUR_RUN, output=last.output)
    else:
        report = TOUR_NOT_RUN.format(command=TOUR_RUN, output=last.output)
    changed = TOUR_CHANGED if written else TOUR_UNCHANGED
    return Reply([_demo_piece(report + "\n\n" + TOUR_NEXT.format(changed=changed))])


def _first_line(prompt: str, limit: int = 60) -> str:
    line = prompt.strip().splitlines()[0] if prompt.strip() else "your message"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _title_reply(body: dict[str, Any], messages: list[dict[str, Any]]) -> Reply:
    """Side request (no tools): a session title, as JSON when a schema asks for it."""
    texts = _prompt_texts(messages[-1]) if messages else []
    words = texts[-1].split()[:6] if texts else []
    title = " ".join(words)[:60] or "Tether session"
    fmt = (body.get("output_config") or {}).get("format") or {}
    properties = (fmt.get("schema") or {}).get("properties") or {}
    if fmt.get("type") == "json_schema" and properties:
        return Reply([_text(json.dumps({name: title for name in properties}))])
    return Reply([_text(title)])


# ---------------------------------------------------------------------------
# How to answer: server-sent events over HTTP/1.1 chunked encoding.


class _EventWriter:
    """Writes server-sent events as HTTP chunks, batching those sent without delay."""

    def __init__(self, wfile: Any) -> None:
        self._wfile = wfile
        self._buffer: list[bytes] = []
        self._size = 0

    def event(self, name: str, data: dict[str, Any]) -> None:
        payload = json.dumps(data, separators=(",", ":"))
        chunk = f"event: {name}\ndata: {payload}\n\n".encode()
        self._buffer.append(chunk)
        self._size += len(chunk)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        self._wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self._wfile.flush()

    def close(self) -> None:
        self.flush()
        self._wfile.write(b"0\r\n\r\n")
        self._wfile.flush()


def stream_reply(out: _EventWriter, reply: Reply, model: str, stopping: threading.Event) -> None:
    """Write one Reply as the Messages API's event stream."""
    out.event("message_start", _message_start(model))
    index = 0
    output_tokens = 0
    if reply.pieces:
        output_tokens += _stream_text(out, index, reply.pieces, stopping)
        index += 1
    if reply.tool is not None:
        _stream_tool(out, index, reply.tool)
        output_tokens += 1
    out.event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": "tool_use" if reply.tool else "end_turn",
                "stop_sequence": None,
            },
            "usage": {"output_tokens": output_tokens},
        },
    )
    out.event("message_stop", {"type": "message_stop"})


def _message_start(model: str) -> dict[str, Any]:
    # Usage is nominal: it keeps the cost the CLI reports near zero.
    return {
        "type": "message_start",
        "message": {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 10,
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        },
    }


def _stream_text(out: _EventWriter, index: int, pieces: list[TextPiece], stopping: threading.Event) -> int:
    block = {"type": "text", "text": ""}
    out.event(
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )
    count = 0
    for piece in pieces:
        started = time.monotonic()
        for number, chunk in enumerate(piece.chunks):
            if piece.stamped:
                out.flush()
                due = started + number * piece.delay
                if stopping.wait(max(0.0, due - time.monotonic())):
                    raise ConnectionAbortedError("stand-in stopping")
                chunk = f"{chunk}@{time.time_ns() // 1000}"
                # Written now, not held until the next slot: the stamp is when it left.
                out.event("content_block_delta", _text_delta(index, chunk))
                out.flush()
                count += 1
                continue
            if piece.delay:
                out.flush()
                # Waiting on the stop event lets stop() end a slow stream at once.
                if stopping.wait(piece.delay):
                    raise ConnectionAbortedError("stand-in stopping")
            out.event("content_block_delta", _text_delta(index, chunk))
            count += 1
    out.event("content_block_stop", {"type": "content_block_stop", "index": index})
    return count


def _text_delta(index: int, text: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}


def _stream_tool(out: _EventWriter, index: int, tool: ToolCall) -> None:
    block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": tool.name}
    out.event(
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}},
    )
    raw = json.dumps(tool.input)
    step = JSON_CHUNK if len(raw) <= FLUSH_BYTES else BIG_DELTA  # megabytes in 16-byte pieces take long
    for start in range(0, len(raw), step):
        delta = {"type": "input_json_delta", "partial_json": raw[start : start + step]}
        out.event(
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": delta},
        )
    out.event("content_block_stop", {"type": "content_block_stop", "index": index})


def error_body(status: int, message: str = "") -> dict[str, Any]:
    """An Anthropic-shaped error body for an HTTP status."""
    kind = ERROR_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": message or f"Scripted {kind} ({status})"},
        "request_id": f"req_{uuid.uuid4().hex[:24]}",
    }


class _Handler(BaseHTTPRequestHandler):
    """Answers the Messages API; everything else gets a JSON 404."""

    protocol_version = "HTTP/1.1"  # keep-alive, as Claude Code expects
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self._read_json()
        if body is None:
            return
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/v1/messages":
            self.server.owner._record(body)
            if isinstance(body.get("messages"), list) and body["messages"]:
                self._answer_messages(body)
            else:
                self._send_json(400, error_body(400, "messages: at least one message is required"))
        elif path == "/v1/messages/count_tokens":
            self._send_json(200, {"input_tokens": max(1, len(json.dumps(body)) // 4)})
        else:
            self._send_json(404, error_body(404, f"No route for POST {path}"))

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path.rstrip("/")
        if path in ("", "/api/hello"):
            self._send_json(200, {"ok": True, "server": "tether-standin"})
        else:
            self._send_json(404, error_body(404, f"No route for GET {path}"))

    def do_HEAD(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path.rstrip("/")
        self.send_response(200 if path in ("", "/api/hello") else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s " + format, self.address_string(), *args)

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send_json(400, error_body(400, "The request body is not a JSON object"))
            return None
        return body

    def _answer_messages(self, body: dict[str, Any]) -> None:
        reply = plan_reply(body)
        if isinstance(reply, ErrorReply):
            # x-should-retry asks the client not to retry, so errors end quickly.
            body = error_body(reply.status, reply.message)
            self._send_json(reply.status, body, {"x-should-retry": "false"})
            return
        if not body.get("stream"):
            self._send_json(200, _collect(reply, body.get("model") or DEFAULT_MODEL))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        out = _EventWriter(self.wfile)
        owner = self.server.owner
        owner._count_stream(+1)
        try:
            stream_reply(out, reply, body.get("model") or DEFAULT_MODEL, self.server.stopping)
            out.close()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            # The client went away (an interrupt) or the server is stopping.
            self.close_connection = True
        finally:
            owner._count_stream(-1)

    def _send_json(self, status: int, data: dict[str, Any], headers: dict | None = None) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)


def _collect(reply: Reply, model: str) -> dict[str, Any]:
    """A non-streaming answer (nothing in Claude Code asks for one, but be correct)."""
    content: list[dict[str, Any]] = []
    text = "".join(chunk for piece in reply.pieces for chunk in piece.chunks)
    if text:
        content.append({"type": "text", "text": text})
    if reply.tool:
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:24]}",
                "name": reply.tool.name,
                "input": reply.tool.input,
            }
        )
    message = _message_start(model)["message"]
    message.update(content=content, stop_reason="tool_use" if reply.tool else "end_turn")
    return message


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a slow stream to end
    owner: StandInModel
    stopping: threading.Event


class StandInModel:
    """The stand-in server: ``start()`` it, point ``ANTHROPIC_BASE_URL`` at ``url``.

    ``requests`` holds the last ``RECORDED_REQUESTS`` ``/v1/messages`` request
    bodies received, in order (``recorded()`` copies them safely while requests
    arrive); ``streaming`` counts the answers being streamed right now. Usable as
    a context manager.
    """

    def __init__(self, port: int = 0) -> None:
        """Prepare a server on 127.0.0.1; port 0 picks a free port at start()."""
        self.port = port
        self.requests: deque[dict[str, Any]] = deque(maxlen=RECORDED_REQUESTS)
        self._streaming = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234`` (valid once started)."""
        if self._server is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://{HOST}:{self._server.server_address[1]}"

    def start(self) -> str:
        """Start serving in a background thread; returns the base URL."""
        if self._server is not None:
            return self.url
        server = _Server((HOST, self.port), _Handler)
        server.owner = self
        server.stopping = threading.Event()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="standin-model",
            daemon=True,
        )
        self._thread.start()
        log.info("stand-in model listening on %s", self.url)
        return self.url

    def stop(self) -> None:
        """Stop serving; slow streams still running are cut off."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def streaming(self) -> int:
        """How many answers are being streamed now (a client that went away ends its own)."""
        with self._lock:
            return self._streaming

    def recorded(self) -> list[dict[str, Any]]:
        """The recorded request bodies, oldest first."""
        with self._lock:
            return list(self.requests)

    def request_for(self, text: str) -> dict[str, Any] | None:
        """The latest main request (one with tools) whose prompt contains `text`, or None.

        Its ``model`` is the model Claude Code asked for; ``prompt_blocks(body)``
        gives the prompt's content blocks (attachments first, the prompt's text last).
        """
        for body in reversed(self.recorded()):
            messages = body.get("messages") or []
            at = _prompt_index(messages)
            if body.get("tools") and at is not None and any(text in p for p in _prompt_texts(messages[at])):
                return body
        return None

    def _record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    def _count_stream(self, step: int) -> None:
        with self._lock:
            self._streaming += step

    def __enter__(self) -> StandInModel:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted: ``python -m agent_client.standin --port P``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = StandInModel(args.port)
    url = model.start()
    print(f"Set ANTHROPIC_BASE_URL={url} and any ANTHROPIC_API_KEY. Ctrl-C stops.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        model.stop()


if __name__ == "__main__":
    main()
