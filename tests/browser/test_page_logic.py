"""The chat page's own logic, run in Chromium without a build step or Node: the store's reducer
(static/js/chat/store.js) and the streaming Markdown renderer (static/js/chat/markdown.js),
imported as the page imports them."""

import pytest

from tests.browser.helpers import RICH_ANSWER

# Runs in the page: the reducer against scripted messages; returns what the test checks.
REOPENED = """async () => {
  const { createState, reduce } = await import("/static/js/chat/store.js");
  const s = createState();
  const act = (action) => reduce(s, action).map((c) => c.op);
  const result = (seq, response, status, extra = {}) =>
    act({ type: "result", message: { sessionId: "S", commandId: "C", seq, response, status, ...extra } });
  const state = (value, text) =>
    act({ type: "command_state", message: { sessionId: "S", commandId: "C", state: value, text } });
  const turn = () => s.turns.get("C");
  const log = [];
  const note = (what, ops) => log.push([what, turn() ? turn().state : null, ops]);
  act({ type: "open", sessionId: "S" });
  note("queued", state("queued", "hello"));
  note("sent", state("sent"));
  note("first text", result(1, "Hel", "streaming"));
  note("stale sent", state("sent"));
  note("agent lost", result(2, "", "error", { error: { code: "agent_lost", message: "gone" } }));
  const lostError = turn().error && turn().error.code;
  note("reopened", state("running"));
  const errorAfterReopen = turn().error;
  note("late text", result(3, "lo", "streaming"));
  note("duplicate", result(3, "lo", "streaming"));
  note("gap", result(5, "!", "streaming"));
  note("done", result(4, "", "complete"));
  note("stale running", state("running"));
  const { prompt, textLength } = turn();
  return { log, prompt, textLength, lastSeq: s.lastSeq, lostError, errorAfterReopen };
}"""


def test_reducer_follows_the_servers_table_and_a_lost_command_reopens(ui):
    page = ui.signed_in_page()
    page.goto(f"/projects/{ui.seed.project_id}")
    out = page.evaluate(REOPENED)
    states = [(what, state) for what, state, _ in out["log"]]
    assert states == [
        ("queued", "queued"),
        ("sent", "sent"),
        ("first text", "running"),
        ("stale sent", "running"),  # the table has no way back from running to sent
        ("agent lost", "failed"),
        ("reopened", "running"),  # failed -> running: the late output of a lost agent
        ("late text", "running"),
        ("duplicate", "running"),
        ("gap", "running"),
        ("done", "done"),
        ("stale running", "done"),
    ]
    ops = dict((what, ops) for what, _, ops in out["log"])
    assert ops["queued"] == ["turn"]  # made from command_state, with its prompt
    assert ops["stale sent"] == [] and ops["duplicate"] == [] and ops["stale running"] == []
    assert ops["agent lost"] == ["state", "finished", "error", "end"]
    assert ops["reopened"] == ["state", "error"]  # the error goes away
    assert ops["late text"] == ["text"]
    assert ops["gap"] == ["gap"]  # seq 5 after 3: the page subscribes again, nothing applied
    assert out["lostError"] == "agent_lost" and out["errorAfterReopen"] is None
    assert out["prompt"] == "hello" and out["textLength"] == 5 and out["lastSeq"] == 4


LOADS = """async () => {
  const { createState, reduce } = await import("/static/js/chat/store.js");
  const s = createState();
  const result = (commandId, seq, response, status) => ({ sessionId: "S", commandId, seq, response, status });
  reduce(s, { type: "open", sessionId: "S" });
  const opened = reduce(s, {
    type: "load",
    lastSeq: 3,
    turns: [
      {
        commandId: "A", text: "a", state: "done",
        results: [result("A", 1, "x", "streaming"), result("A", 2, "y", "complete")],
      },
      { commandId: "B", text: "b", state: "running", results: [result("B", 3, "z", "streaming")] },
    ],
  });
  const live = reduce(s, { type: "result", message: result("B", 4, "", "complete") });
  const older = reduce(s, {
    type: "load", older: true, turns: [{ commandId: "Z", text: "z", state: "done", results: [] }],
  });
  const refreshed = reduce(s, {
    type: "load",
    turns: [
      { commandId: "Y", text: "not loaded", state: "done" },
      { commandId: "B", text: "b", state: "done" },
      { commandId: "N", text: "sent elsewhere", state: "queued" },
    ],
  });
  // A state load can run ahead of the stream (a replay still on its way): the text that
  // follows is appended and the final result still ends it.
  const ops = (changes) => changes.map((c) => c.op);
  const done = { commandId: "N", text: "sent elsewhere", state: "done" };
  const ahead = ops(reduce(s, { type: "load", turns: [done] }));
  const late = ops(reduce(s, { type: "result", message: result("N", 5, "late", "streaming") }));
  const last = ops(reduce(s, { type: "result", message: result("N", 6, "", "complete") }));
  const view = (changes) => changes.filter((c) => c.op === "turn").map((c) => [c.turn.key, c.before ?? null]);
  return {
    lastSeq: s.lastSeq,
    states: Object.fromEntries([...s.turns].map(([key, t]) => [key, t.state])),
    openedFinished: opened.filter((c) => c.op === "finished").length,
    liveFinished: live.filter((c) => c.op === "finished").map((c) => c.turn.key),
    olderTurns: view(older),
    first: s.first,
    refreshedTurns: view(refreshed),
    ahead,
    late,
    last,
  };
}"""


def test_rest_loads_go_through_the_same_reducer(ui):
    page = ui.signed_in_page()
    page.goto(f"/projects/{ui.seed.project_id}")
    out = page.evaluate(LOADS)
    assert out["lastSeq"] == 6  # 3 from the first load, then 4, 5, 6 live
    assert out["states"] == {"A": "done", "B": "done", "Z": "done", "N": "done"}
    assert out["openedFinished"] == 0  # history is not news: no notification for it
    assert out["liveFinished"] == ["B"]
    assert out["olderTurns"] == [["Z", "A"]] and out["first"] == "Z"  # above the first turn shown
    assert out["refreshedTurns"] == [["N", None]]  # Y is older than what is shown: left out
    assert out["ahead"] == ["state", "finished"]
    assert out["late"] == ["text"]  # done stays done: the table has no way back from it
    assert out["last"] == ["end"]


NEW_SESSION = """async () => {
  const { createState, reduce } = await import("/static/js/chat/store.js");
  const s = createState();
  reduce(s, { type: "open", sessionId: null });
  reduce(s, { type: "send", key: "pending:1", text: "hi", newSession: true });
  const result = (seq, response, status) => ({ sessionId: "T", commandId: "C", seq, response, status });
  const early = reduce(s, { type: "result", message: result(1, "fast", "streaming") });
  const ack = { type: "sent", key: "pending:1", commandId: "C", sessionId: "T", newSession: true };
  const acked = reduce(s, ack);
  const request = { sessionId: "T", commandId: "C", requestId: "R", toolName: "Bash", input: {} };
  const asked = reduce(s, { type: "permission_request", message: request });
  const ended = reduce(s, { type: "result", message: result(2, "", "complete") });
  return {
    early: early.length,
    acked: acked.map((c) => c.op),
    session: s.sessionId,
    turn: [...s.turns.keys()],
    text: s.turns.get("C").textLength,
    asked: asked.map((c) => c.op),
    ended: ended.map((c) => c.op),
    pending: s.permissions.size,
  };
}"""


def test_a_new_sessions_first_results_wait_for_the_ack_that_names_it(ui):
    page = ui.signed_in_page()
    page.goto(f"/projects/{ui.seed.project_id}")
    out = page.evaluate(NEW_SESSION)
    assert out["early"] == 0  # held: the session has no id on this page yet
    assert out["acked"] == ["bind", "state", "session", "text", "state"]
    assert out["session"] == "T" and out["turn"] == ["C"] and out["text"] == 4
    assert out["asked"] == ["permission"]
    assert out["ended"] == ["state", "permission_gone", "finished", "end"]
    assert out["pending"] == 0


# Runs in the page: stream Markdown in pieces of `size` characters (0: varied small pieces),
# flushing now and then, and compare with the whole text rendered at once.
STREAMED = """async ([text, size]) => {
  const md = await import("/static/js/chat/markdown.js");
  const streamed = document.createElement("div");
  const stream = new md.MarkdownStream(streamed);
  for (let i = 0, n = 0; i < text.length; n += 1) {
    const k = size || 1 + ((n * 7919) % 13);
    stream.append(text.slice(i, i + k));
    i += k;
    if (n % 3 === 0) stream.flush();
  }
  stream.finish();
  while (stream.flush()) {}
  const whole = document.createElement("div");
  whole.append(md.renderMarkdown(text));
  return [streamed.innerHTML, whole.innerHTML];
}"""

MORE_MARKDOWN = """
- loose item one

- loose item two
  with a continuation line

> a quote
continued lazily

````md
```
a fence inside a fence
```
````

    indented code

Setext heading
--------------

Text with <b>inline html</b>, a [link](https://example.com) and a rule:

***
~~~
tilde fence
~~~
The last paragraph, without a newline at the end"""


@pytest.mark.parametrize("size", [0, 1, 7, 100_000])
def test_streamed_markdown_ends_as_the_whole_text_rendered_at_once(ui, size):
    page = ui.signed_in_page()
    page.goto(f"/projects/{ui.seed.project_id}")
    text = RICH_ANSWER.removeprefix("say: ") + MORE_MARKDOWN
    streamed, whole = page.evaluate(STREAMED, [text, size])
    assert "hljs" in whole and "<table>" in whole and "&lt;b&gt;" in whole
    assert streamed == whole


BIG = """async () => {
  const md = await import("/static/js/chat/markdown.js");
  const root = document.createElement("div");
  const stream = new md.MarkdownStream(root);
  stream.append("```python\\nprint('hi')\\n```\\n\\n");
  stream.flush();
  const highlighted = Boolean(root.querySelector("pre code.hljs .hljs-built_in"));
  const words = [];
  for (let i = 0; i < 40000; i += 1) words.push(i ? ` w${i}` : "w0");
  for (let i = 0; i < words.length; i += 100) {
    stream.append(words.slice(i, i + 100).join(""));
    stream.flush();
  }
  const pieces = root.querySelectorAll(".plain-text > div").length;
  stream.finish();
  while (stream.flush()) {}
  const text = root.querySelector(".plain-text").textContent;
  return { highlighted, pieces, exact: text === words.join(""), formatted: Boolean(root.querySelector("p")) };
}"""


def test_a_closed_code_block_is_highlighted_at_once_and_a_huge_paragraph_stays_plain_and_exact(ui):
    page = ui.signed_in_page()
    page.goto(f"/projects/{ui.seed.project_id}")
    out = page.evaluate(BIG)
    assert out["highlighted"]  # before the answer is finished
    assert out["pieces"] > 10  # laid out in pieces, not as one growing block
    assert out["exact"]
    assert not out["formatted"]  # 270 KB in one paragraph: too big to format


# The workspace's part of the reducer: Claude Code's offer, the session's model, attachments and
# the changes panel's cue (a Write's result live, not one replayed from history).
WORKSPACE = """async () => {
  const { createState, reduce } = await import("/static/js/chat/store.js");
  const s = createState();
  const ops = (action) => reduce(s, action).map((c) => c.op);
  const result = (seq, event) =>
    ({ sessionId: "S", commandId: "C", seq, response: "", status: "streaming", event });
  const init = { type: "system", subtype: "init", model: "claude-x",
    models: [{ value: "opus", displayName: "Opus", description: "" }],
    commands: [{ name: "compact", description: "Compact", argumentHint: "" }] };
  const write = { type: "tool_use", id: "T1", name: "Write", input: { file_path: "a" } };
  const read = { type: "tool_use", id: "T2", name: "Read", input: { file_path: "a" } };
  const done = (id) => ({ type: "tool_result", tool_use_id: id, content: "ok" });
  ops({ type: "open", sessionId: "S" });
  const queued = ops({ type: "command_state", message: { sessionId: "S", commandId: "C", state: "queued",
    text: "hi", model: "opus",
    attachments: [{ index: 0, name: "a.png", mediaType: "image/png", size: 3 }] } });
  const offered = ops({ type: "result", message: result(1, init) });
  ops({ type: "result", message: result(2, write) });
  ops({ type: "result", message: result(3, read) });
  const readDone = ops({ type: "result", message: result(4, done("T2")) });
  const writeDone = ops({ type: "result", message: result(5, done("T1")) });
  const kept = { offer: s.offered.commands.map((c) => c.name), model: s.model };
  ops({ type: "open", sessionId: "S2" });
  const history = ops({ type: "load", lastSeq: 3, turns: [{ commandId: "D", text: "x", state: "done",
    model: null, attachments: [], results: [
      { sessionId: "S2", commandId: "D", seq: 1, response: "", status: "streaming", event: write },
      { sessionId: "S2", commandId: "D", seq: 2, response: "", status: "streaming", event: done("T1") },
    ] }] });
  const after = s.offered.models[0].value;
  return { queued, offered, readDone, writeDone, kept, history, after, model: s.model };
}"""


def test_reducer_keeps_claude_codes_offer_the_sessions_model_and_signals_written_files(ui):
    page = ui.signed_in_page()
    page.goto(f"/projects/{ui.seed.project_id}")
    out = page.evaluate(WORKSPACE)
    assert out["queued"] == ["turn", "attachments", "model"]
    assert "offered" in out["offered"]
    assert "files_changed" not in out["readDone"] and "files_changed" in out["writeDone"]
    assert out["kept"] == {"offer": ["compact"], "model": "opus"}
    # Another session: the offer stays (it is the agent's), the model is that session's; history is quiet.
    assert out["after"] == "opus" and out["model"] is None
    assert "files_changed" not in out["history"]
