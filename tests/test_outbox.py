"""The agent's outbox, with an in-test link standing in for the socket.

The link records every chunk the outbox sends and acknowledges it when the test
says so (or at once, with auto_ack). As with a real socket, automatic acks arrive
on another thread, never inside `send` itself.
"""

import contextlib
import json
import os
import threading

import pytest

from agent_client.outbox import Outbox, Stream
from tests.harness import wait_until

WAIT = 10.0


class Link:
    """The outbox's `send`: records (chunk copy, on_ack) and acks on request."""

    def __init__(self, auto_ack=False):
        self.auto_ack = auto_ack
        self.sent = []  # (chunk, on_ack) in sending order
        self.lock = threading.Lock()

    def __call__(self, chunk, on_ack):
        with self.lock:
            self.sent.append((dict(chunk), on_ack))
        if self.auto_ack:
            threading.Thread(target=on_ack, args=({"ok": True},), daemon=True).start()

    def chunks(self, command_id=None):
        with self.lock:
            return [c for c, _ in self.sent if command_id is None or c["commandId"] == command_id]

    def wait_sent(self, count, command_id=None):
        """Wait until at least `count` chunks (of `command_id`) were sent; returns them."""
        wait_until(lambda: len(self.chunks(command_id)) >= count, WAIT, f"{count} chunks sent")
        return self.chunks(command_id)

    def ack(self, index=-1, reply=None, command_id=None):
        """Acknowledge the `index`-th send (of `command_id`), by default the latest."""
        with self.lock:
            sends = [s for s in self.sent if command_id is None or s[0]["commandId"] == command_id]
            _, on_ack = sends[index]
        on_ack({"ok": True} if reply is None else reply)


@pytest.fixture
def outboxes():
    made = []
    yield made
    for outbox in made:
        outbox.close()


@pytest.fixture
def make_outbox(outboxes):
    def make(link, online=True, **kwargs):
        outbox = Outbox(link, **kwargs)
        outboxes.append(outbox)
        if online:
            outbox.online()
        return outbox

    return make


def make_barrier(outbox, link, name="barrier"):
    """Push a probe through another command and wait for it to go out.

    The outbox's one sending thread visits every command in each pass, so once
    the probe is sent, everything queued before it has had its chance to go.
    """
    before = len(link.chunks(name))
    outbox.finish("s-barrier", name)
    link.wait_sent(before + 1, name)


def sent_text(chunks):
    return "".join(chunk["data"] for chunk in sorted(chunks, key=lambda c: c["seq"]))


def test_deltas_queued_while_offline_go_out_as_one_chunk(make_outbox):
    link = Link(auto_ack=True)
    outbox = make_outbox(link, online=False)
    deltas = [f"token{i} " for i in range(1000)]
    for delta in deltas:
        outbox.text("s1", "c1", delta)
    outbox.online()
    chunks = link.wait_sent(1, "c1")
    assert len(chunks) == 1
    assert chunks[0]["data"] == "".join(deltas)
    assert chunks[0]["seq"] == 1 and chunks[0]["isComplete"] is False


def test_deltas_arriving_while_a_chunk_is_in_flight_ride_in_the_next_chunk(make_outbox):
    link = Link()
    outbox = make_outbox(link)
    outbox.text("s1", "c1", "first ")
    link.wait_sent(1, "c1")
    deltas = [f"d{i} " for i in range(500)]
    for delta in deltas:
        outbox.text("s1", "c1", delta)
    outbox.finish("s1", "c1")
    make_barrier(outbox, link)
    assert len(link.chunks("c1")) == 1

    link.ack(command_id="c1")
    second = link.wait_sent(2, "c1")[1]
    assert second["seq"] == 2
    assert second["data"] == "".join(deltas)


def test_at_most_one_chunk_per_command_is_in_flight(make_outbox):
    link = Link()
    outbox = make_outbox(link, online=False)
    for command_id in ("c1", "c2"):
        outbox.text("s1", command_id, "before the event")
        outbox.event("s1", command_id, {"type": "tool_use"})
        outbox.text("s1", command_id, "after the event")
        outbox.finish("s1", command_id)
    outbox.online()
    link.wait_sent(1, "c1")
    link.wait_sent(1, "c2")
    make_barrier(outbox, link)
    assert [c["seq"] for c in link.chunks("c1")] == [1]
    assert [c["seq"] for c in link.chunks("c2")] == [1]


def test_each_ack_releases_the_next_chunk_and_without_ack_nothing_more_is_sent(make_outbox):
    link = Link()
    outbox = make_outbox(link, online=False)
    outbox.text("s1", "c1", "one")
    outbox.event("s1", "c1", {"type": "tool_use", "id": 1})
    outbox.event("s1", "c1", {"type": "tool_result", "id": 1})
    outbox.finish("s1", "c1")
    outbox.online()

    for count in (1, 2, 3):
        chunks = link.wait_sent(count, "c1")
        make_barrier(outbox, link, name=f"barrier-{count}")
        assert len(link.chunks("c1")) == count, "a chunk went out before the previous was acknowledged"
        link.ack(command_id="c1")
    # The text rides with the first event; finish makes a chunk of its own.
    assert [(c["seq"], c["data"], c["isComplete"]) for c in chunks] == [
        (1, "one", False),
        (2, "", False),
        (3, "", True),
    ]
    assert "c1" not in outbox.pending_commands()


def test_reconnect_resends_the_unacknowledged_chunk_with_the_same_seq(make_outbox):
    link = Link()
    outbox = make_outbox(link, online=False)
    outbox.text("s1", "c1", "hello")
    outbox.event("s1", "c1", {"type": "tool_use"})
    outbox.finish("s1", "c1")
    outbox.online()
    first = link.wait_sent(1, "c1")[0]

    outbox.offline()
    outbox.online()
    again = link.wait_sent(2, "c1")[1]
    assert again == first
    assert again["seq"] == 1 and again["data"] == "hello"

    link.ack(command_id="c1")
    final = link.wait_sent(3, "c1")[2]
    assert final["seq"] == 2 and final["isComplete"] is True


def test_nothing_is_sent_while_offline(make_outbox):
    link = Link(auto_ack=True)
    outbox = make_outbox(link, online=False)
    outbox.text("s1", "c1", "queued")
    outbox.finish("s1", "c1")
    outbox.finish("s1", "c2")
    assert link.chunks() == []
    assert sorted(outbox.pending_commands()) == ["c1", "c2"]
    outbox.online()
    wait_until(outbox.idle, WAIT, "the outbox to drain")
    assert [(c["commandId"], c["seq"]) for c in link.chunks()] == [("c1", 1), ("c2", 1)]


def test_seqs_count_from_1_per_command_without_gaps(make_outbox):
    link = Link(auto_ack=True)
    outbox = make_outbox(link, window=0.0)
    for round_ in range(5):
        for command_id in ("c1", "c2", "c3"):
            outbox.text("s1", command_id, f"{command_id}-{round_} ")
            outbox.event("s1", command_id, {"type": "tool_use", "round": round_})
    for command_id in ("c1", "c2", "c3"):
        outbox.finish("s1", command_id)
    wait_until(outbox.idle, WAIT, "the outbox to drain")

    for command_id in ("c1", "c2", "c3"):
        chunks = link.chunks(command_id)
        seqs = [chunk["seq"] for chunk in chunks]
        assert seqs == list(range(1, len(seqs) + 1))
        assert sent_text(chunks) == "".join(f"{command_id}-{r} " for r in range(5))
        assert [c["isComplete"] for c in chunks] == [False] * (len(chunks) - 1) + [True]


def test_event_closes_the_chunk_holding_the_text_before_it(make_outbox):
    link = Link(auto_ack=True)
    outbox = make_outbox(link, online=False)
    tool_use = {"type": "assistant", "message": {"content": [{"type": "tool_use", "name": "Bash"}]}}
    outbox.text("s1", "c1", "Let me look. ")
    outbox.event("s1", "c1", tool_use)
    outbox.text("s1", "c1", "Done.")
    outbox.finish("s1", "c1")
    outbox.online()
    wait_until(outbox.idle, WAIT, "the outbox to drain")

    first, last = link.chunks("c1")
    assert (first["seq"], first["data"], first["event"], first["isComplete"]) == (
        1,
        "Let me look. ",
        tool_use,
        False,
    )
    assert (last["seq"], last["data"], last["isComplete"]) == (2, "Done.", True)
    assert "event" not in last and "error" not in last


def test_finish_sends_a_complete_chunk(make_outbox):
    link = Link(auto_ack=True)
    outbox = make_outbox(link)
    outbox.finish("s1", "c1")
    wait_until(outbox.idle, WAIT, "the outbox to drain")
    assert link.chunks("c1") == [
        {
            "type": "command_response",
            "sessionId": "s1",
            "commandId": "c1",
            "seq": 1,
            "data": "",
            "isComplete": True,
        }
    ]


def test_finish_with_an_error_carries_it_in_the_complete_chunk(make_outbox):
    link = Link(auto_ack=True)
    outbox = make_outbox(link, online=False)
    outbox.text("s1", "c1", "partial answer")
    error = {"code": "claude_error", "message": "Claude Code exited with status 1"}
    outbox.finish("s1", "c1", error=error)
    outbox.online()
    wait_until(outbox.idle, WAIT, "the outbox to drain")
    (chunk,) = link.chunks("c1")
    assert (chunk["data"], chunk["isComplete"], chunk["error"]) == ("partial answer", True, error)


def test_refused_chunk_is_dropped_but_internal_error_is_retried(make_outbox):
    link = Link()
    outbox = make_outbox(link, online=False)
    outbox.event("s1", "c1", {"n": 1})
    outbox.finish("s1", "c1")
    outbox.online()

    link.wait_sent(1, "c1")
    link.ack(command_id="c1", reply={"ok": False, "error": {"code": "internal", "message": "db"}})
    retried = link.wait_sent(2, "c1")[1]
    assert retried["seq"] == 1

    link.ack(command_id="c1", reply={"ok": False, "error": {"code": "invalid_message", "message": "x"}})
    assert link.wait_sent(3, "c1")[2]["seq"] == 2


def test_chunk_file_is_kept_until_the_final_ack_and_then_deleted(make_outbox, tmp_path):
    link = Link()
    state_dir = tmp_path / "state"
    outbox = make_outbox(link, online=False, state_dir=str(state_dir))
    outbox.text("s1", "c1", "some text")
    outbox.event("s1", "c1", {"type": "tool_use"})
    outbox.finish("s1", "c1")
    path = state_dir / "c1.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(c["seq"], c["isComplete"]) for c in lines] == [(1, False), (2, True)]

    outbox.online()
    link.wait_sent(1, "c1")
    link.ack(command_id="c1")
    assert path.exists()
    link.wait_sent(2, "c1")
    link.ack(command_id="c1")
    assert not path.exists()
    assert outbox.idle()


def test_recover_replays_a_left_over_file_and_closes_the_command_as_agent_lost(make_outbox, tmp_path):
    state_dir = str(tmp_path / "state")
    crashed = make_outbox(Link(), online=False, state_dir=state_dir)
    crashed.text("s1", "c1", "before the crash")
    crashed.event("s1", "c1", {"type": "tool_use"})
    crashed.event("s1", "c1", {"type": "tool_result"})
    crashed.close()
    assert os.listdir(state_dir) == ["c1.jsonl"]

    link = Link(auto_ack=True)
    outbox = make_outbox(link, online=False, state_dir=state_dir)
    outbox.recover()
    assert outbox.pending_commands() == ["c1"]
    outbox.online()
    wait_until(outbox.idle, WAIT, "the recovered chunks to be acknowledged")

    chunks = link.chunks("c1")
    assert [c["seq"] for c in chunks] == [1, 2, 3]
    assert chunks[0]["data"] == "before the crash"
    assert [c["isComplete"] for c in chunks] == [False, False, True]
    assert chunks[2]["error"]["code"] == "agent_lost"
    assert os.listdir(state_dir) == []


def test_recover_replays_a_finished_command_without_adding_an_error(make_outbox, tmp_path):
    state_dir = str(tmp_path / "state")
    crashed = make_outbox(Link(), online=False, state_dir=state_dir)
    crashed.text("s1", "c1", "all of it")
    crashed.finish("s1", "c1")
    crashed.close()

    link = Link(auto_ack=True)
    outbox = make_outbox(link, online=False, state_dir=state_dir)
    outbox.recover()
    outbox.online()
    wait_until(outbox.idle, WAIT, "the recovered chunks to be acknowledged")
    (chunk,) = link.chunks("c1")
    assert (chunk["seq"], chunk["data"], chunk["isComplete"]) == (1, "all of it", True)
    assert "error" not in chunk
    assert os.listdir(state_dir) == []


def test_recover_ignores_a_torn_last_line(make_outbox, tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    whole = {
        "type": "command_response",
        "sessionId": "s1",
        "commandId": "c1",
        "seq": 1,
        "data": "kept",
        "isComplete": False,
    }
    (state_dir / "c1.jsonl").write_text(json.dumps(whole) + "\n" + '{"type": "command_resp')

    link = Link(auto_ack=True)
    outbox = make_outbox(link, online=False, state_dir=str(state_dir))
    outbox.recover()
    outbox.online()
    wait_until(outbox.idle, WAIT, "the recovered chunks to be acknowledged")
    chunks = link.chunks("c1")
    assert [(c["seq"], c["data"], c["isComplete"]) for c in chunks] == [(1, "kept", False), (2, "", True)]
    assert chunks[1]["error"]["code"] == "agent_lost"


def test_producer_blocks_while_too_much_is_unacknowledged_and_resumes_as_acks_drain(make_outbox):
    link = Link()
    outbox = make_outbox(link, online=False, max_buffered_chars=10)
    deltas = [f"{i:05d}" for i in range(8)]  # 5 characters each
    produced = []

    def produce():
        for delta in deltas:
            outbox.text("s1", "c1", delta)
            produced.append(delta)
        outbox.finish("s1", "c1")

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    # Three deltas (15 characters) exceed the bound of 10: the fourth call waits.
    wait_until(lambda: len(produced) == 3, WAIT, "three deltas to be queued")
    producer.join(0.3)
    assert producer.is_alive() and len(produced) == 3

    outbox.online()
    link.wait_sent(1, "c1")
    producer.join(0.3)
    assert producer.is_alive() and len(produced) == 3, "a sent but unacknowledged chunk still counts"

    link.auto_ack = True
    link.ack(command_id="c1")
    producer.join(WAIT)
    assert not producer.is_alive()
    wait_until(outbox.idle, WAIT, "the outbox to drain")
    chunks = link.chunks("c1")
    assert sent_text(chunks) == "".join(deltas)
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert chunks[-1]["isComplete"] is True


def test_a_burst_goes_one_chunk_per_window(make_outbox):
    link = Link()
    # Deltas less than a minute apart are a burst; a window that never ends.
    outbox = make_outbox(link, window=60.0, burst_gap=60.0)
    outbox.text("s1", "c1", "first ")  # nothing was sent before it: it goes at once
    assert link.wait_sent(1, "c1")[0]["data"] == "first "
    link.ack(command_id="c1")
    outbox.text("s1", "c1", "held ")
    outbox.text("s1", "c1", "together")
    make_barrier(outbox, link)
    assert len(link.chunks("c1")) == 1, "a second chunk of the burst went out within the window"
    outbox.finish("s1", "c1")  # the end does not wait: it takes the held text with it
    last = link.wait_sent(2, "c1")[1]
    assert (last["seq"], last["data"], last["isComplete"]) == (2, "held together", True)


def test_at_a_models_pace_a_delta_goes_as_soon_as_nothing_is_in_flight(make_outbox):
    link = Link()
    outbox = make_outbox(link, window=60.0, burst_gap=0.0)  # never a burst
    outbox.text("s1", "c1", "one ")
    link.wait_sent(1, "c1")
    outbox.text("s1", "c1", "two ")  # the first chunk is in flight: this waits for its ack
    make_barrier(outbox, link)
    assert len(link.chunks("c1")) == 1
    link.ack(command_id="c1")
    assert link.wait_sent(2, "c1")[1]["data"] == "two "  # at once, though the window is a minute
    link.ack(command_id="c1")
    outbox.text("s1", "c1", "three")
    assert link.wait_sent(3, "c1")[2]["data"] == "three"


@pytest.mark.parametrize("long_burst, held", [(60.0, False), (0.0, True)])
def test_a_burst_that_lasts_goes_one_chunk_per_long_window(make_outbox, long_burst, held):
    link = Link()
    # Every delta is part of one burst; the short window is nothing, the long one a minute.
    outbox = make_outbox(link, window=0.0, burst_gap=60.0, long_burst=long_burst, long_window=60.0)
    outbox.text("s1", "c1", "first ")
    link.wait_sent(1, "c1")
    link.ack(command_id="c1")
    outbox.text("s1", "c1", "second")
    make_barrier(outbox, link)
    assert len(link.chunks("c1")) == (1 if held else 2)


def test_a_burst_is_told_by_the_average_gap_not_by_the_last_one(make_outbox):
    outbox = make_outbox(Link(), online=False)  # burst_gap 1 ms: above 1,000 deltas a second
    stream = Stream("s1", "c1")
    now = 1000.0
    for _ in range(100):  # 20,000 deltas a second
        now += 0.00005
        outbox._pace(stream, now)
    began = stream.burst_since
    assert began is not None
    now += 0.003  # one late delta: the lock or a core was busy elsewhere for a moment
    outbox._pace(stream, now)
    assert stream.burst_since == began, "one gap ended the burst"
    for _ in range(60):  # then 200 deltas a second: a model's pace
        now += 0.005
        outbox._pace(stream, now)
    assert stream.burst_since is None


def open_files(path):
    """How many of this process's descriptors are open on `path`."""
    fds = "/proc/self/fd"
    count = 0
    for fd in os.listdir(fds):
        with contextlib.suppress(OSError):
            count += os.readlink(os.path.join(fds, fd)) == str(path)
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_chunk_file_stays_open_while_the_command_has_output_and_is_closed_after(make_outbox, tmp_path):
    link = Link(auto_ack=False)
    state_dir = tmp_path / "state"
    outbox = make_outbox(link, state_dir=str(state_dir))
    path = state_dir / "c1.jsonl"
    for i in range(3):
        outbox.event("s1", "c1", {"type": "tool_use", "n": i})
    # Written at once (another reader sees every chunk), through one descriptor.
    assert [json.loads(line)["seq"] for line in path.read_text().splitlines()] == [1, 2, 3]
    assert open_files(path) == 1
    outbox.finish("s1", "c1")
    for count in (1, 2, 3, 4):
        link.wait_sent(count, "c1")
        link.ack(command_id="c1")
    wait_until(outbox.idle, WAIT, "the outbox to drain")
    assert not path.exists() and open_files(path) == 0

    outbox.event("s1", "c2", {"type": "tool_use"})
    assert open_files(state_dir / "c2.jsonl") == 1
    outbox.close()
    assert open_files(state_dir / "c2.jsonl") == 0
    assert (state_dir / "c2.jsonl").exists(), "closing keeps unacknowledged output for the next run"
