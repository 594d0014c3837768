"""The agent's outbox: coalesced, acknowledged, resendable output per command.

Claude Code can emit about 20,000 text deltas a second; one Socket.IO socket
carries about 6,000 messages a second. So deltas are never sent one by one:
each command has at most one chunk in flight, and everything that arrives while
it is in flight rides in the next chunk. While deltas come at a model's pace
(on average more than `burst_gap` seconds apart), each goes as soon as nothing
is in flight. In a burst (closer together: Claude Code catching up), at most one
chunk goes every `window` seconds, and once the burst has lasted `long_burst`
seconds, one every `long_window`: each chunk costs the server a store and a send
to every browser, and a long burst is text the reader gets in one go anyway. So
a slow stream waits for nothing but the link, and a fast one, or a slow link,
gets fewer, bigger chunks instead of a queue. (An average, not the last gap: a
burst's deltas also come with gaps, when the interpreter lock or a core is busy
elsewhere for a moment.)

Every chunk waits for the server's acknowledgement. Unacknowledged chunks are
kept in memory and appended to a file per command in the state directory, and
are sent again after a reconnect (the server ignores a (commandId, seq) it has).
A chunk is on disk before it is sent: written to the command's file, which stays
open while the command has output, with one write() call (no buffer in this
process, so a chunk written survives the agent being killed; like before, it is
not fsync-ed, so a crash of the whole machine may lose the last ones). A chunk
file left over from a previous run of the agent is replayed at start, closed
with an `agent_lost` error if its command never finished.
"""

import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field

log = logging.getLogger("tether.agent")

ACK_TIMEOUT = 30.0
RETRY_DELAY = 1.0
GAP_WEIGHT = 0.1  # of the latest gap in the average: a burst is told within a few dozen deltas
MAX_GAP = 0.1  # longer gaps count as this much, so that a pause is forgotten as fast
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)


@dataclass
class Stream:
    """One command's output on its way to the server."""

    session_id: str
    command_id: str
    next_seq: int = 1
    text: list = field(default_factory=list)
    text_chars: int = 0  # kept up to date: counting the parts on every delta costs too much
    sealed: deque = field(default_factory=deque)  # chunks built, not yet acknowledged
    in_flight: dict | None = None
    sent_at: float = float("-inf")  # when the last chunk went out
    text_at: float = float("-inf")  # when the last delta came
    gap: float = MAX_GAP  # moving average of the time between deltas
    burst_since: float | None = None  # since when deltas come in a burst; None: at a model's pace
    retry_at: float = 0.0
    finished: bool = False
    file: int | None = None  # the open chunk file (a descriptor), while the command has output


class Outbox:
    def __init__(
        self,
        send,
        *,
        window=0.005,
        burst_gap=0.001,
        long_burst=0.1,
        long_window=0.05,
        state_dir=None,
        max_chunk_chars=64_000,
        max_buffered_chars=16_000_000,
    ):
        """`send(chunk, on_ack)` emits a command_response; `on_ack(reply)` is called with the ack."""
        self._send = send
        self.window = window
        self.burst_gap = burst_gap
        self.long_burst = long_burst
        self.long_window = long_window
        self.max_chunk_chars = max_chunk_chars
        self.max_buffered_chars = max_buffered_chars
        self.state_dir = state_dir
        self._streams = {}
        self._buffered_chars = 0  # text held for the server, sealed or not
        self._online = False
        self._cond = threading.Condition()
        self._closed = False
        if state_dir:
            os.makedirs(state_dir, exist_ok=True)
        self._thread = threading.Thread(target=self._pump, name="outbox", daemon=True)
        self._thread.start()

    # -- producers (worker threads) -----------------------------------------

    def text(self, session_id, command_id, text):
        """Queue a text delta; blocks while too much output waits for the server."""
        if not text:
            return
        with self._cond:
            stream = self._stream(session_id, command_id)
            while self._buffered_chars > self.max_buffered_chars and not self._closed:
                self._cond.wait(1.0)  # back-pressure: Claude Code waits, memory stays bounded
            now = time.monotonic()
            first = not stream.text
            self._pace(stream, now)
            stream.text.append(text)
            stream.text_chars += len(text)
            self._buffered_chars += len(text)
            full = stream.text_chars >= self.max_chunk_chars
            if full:
                self._seal(stream)
            # Wake the sender only when this delta changes its plans: the first one may go
            # now (or when the window ends), a full chunk goes now. Waking it for every
            # delta of a 20,000-delta answer costs more than the sending does.
            if first or full:
                self._cond.notify_all()

    def event(self, session_id, command_id, event):
        """Queue a structured event; it closes the chunk holding the text before it."""
        with self._cond:
            self._seal(self._stream(session_id, command_id), event=event)
            self._cond.notify_all()

    def finish(self, session_id, command_id, error=None):
        """The command's last chunk: complete, or failed with `error`."""
        with self._cond:
            stream = self._stream(session_id, command_id)
            self._seal(stream, complete=True, error=error)
            stream.finished = True
            self._cond.notify_all()

    # -- transport ------------------------------------------------------------

    def online(self):
        """The socket is (re)connected: send everything unacknowledged again."""
        with self._cond:
            self._online = True
            for stream in self._streams.values():
                stream.in_flight = None
            self._cond.notify_all()

    def offline(self):
        with self._cond:
            self._online = False

    def pending_commands(self):
        """Commands with output the server has not acknowledged yet."""
        with self._cond:
            return list(self._streams)

    def idle(self):
        with self._cond:
            return not self._streams

    def close(self):
        with self._cond:
            self._closed = True
            for stream in self._streams.values():
                self._close_file(stream)
            self._cond.notify_all()

    def recover(self):
        """Replay chunk files left by a previous run of this agent."""
        if not self.state_dir:
            return
        for name in sorted(os.listdir(self.state_dir)):
            if name.endswith(".jsonl"):
                self._recover_file(os.path.join(self.state_dir, name))

    # -- internals -------------------------------------------------------------

    def _stream(self, session_id, command_id):
        stream = self._streams.get(command_id)
        if stream is None:
            stream = self._streams[command_id] = Stream(session_id, command_id)
        return stream

    def _seal(self, stream, event=None, complete=False, error=None):
        """Turn the buffered text (plus an event or the end) into the next chunk."""
        chunk = {
            "type": "command_response",
            "sessionId": stream.session_id,
            "commandId": stream.command_id,
            "seq": stream.next_seq,
            "data": "".join(stream.text),
            "isComplete": complete,
        }
        if event is not None:
            chunk["event"] = event
        if error is not None:
            chunk["error"] = error
        stream.next_seq += 1
        stream.text = []
        stream.text_chars = 0
        stream.sealed.append(chunk)
        self._persist(stream, chunk)

    def _pump(self):
        """The one thread that sends: picks each stream's next chunk when it may go."""
        with self._cond:
            while not self._closed:
                wait = self._send_ready(time.monotonic())
                self._cond.wait(wait)

    def _send_ready(self, now):
        """Send what may go now; returns how long to sleep until something might."""
        wait = 1.0
        if not self._online:
            return wait
        for stream in list(self._streams.values()):
            if stream.in_flight is not None:
                if now - stream.sent_at < ACK_TIMEOUT:
                    continue
                log.warning(
                    "no acknowledgement of chunk %s of command %s in %.0f s; sending it again",
                    stream.in_flight["seq"],
                    stream.command_id,
                    ACK_TIMEOUT,
                )
                stream.in_flight = None
            if now < stream.retry_at:
                wait = min(wait, stream.retry_at - now)
                continue
            if not stream.sealed and stream.text:
                due = self._due(stream, now)
                if now < due:
                    wait = min(wait, due - now)
                    continue
                self._seal(stream)
            if stream.sealed:
                self._transmit(stream, stream.sealed[0], now)
        return max(wait, 0.0005)

    def _pace(self, stream, now):
        """Follow how fast deltas come: an average of the gaps, and since when it is a burst."""
        stream.gap += (min(now - stream.text_at, MAX_GAP) - stream.gap) * GAP_WEIGHT
        stream.text_at = now
        if stream.gap >= self.burst_gap:
            stream.burst_since = None
        elif stream.burst_since is None:
            stream.burst_since = now

    def _due(self, stream, now):
        """When the buffered text may go: now at a model's pace; in a burst, one chunk per window."""
        if stream.burst_since is None:
            return now
        long = now - stream.burst_since >= self.long_burst
        return stream.sent_at + (self.long_window if long else self.window)

    def _transmit(self, stream, chunk, now):
        stream.in_flight = chunk
        stream.sent_at = now

        def on_ack(reply=None):
            with self._cond:
                self._acknowledged(stream, chunk, reply)
                self._cond.notify_all()

        try:
            self._send(chunk, on_ack)
        except Exception as error:  # the socket dropped between checks; retry later
            log.debug("send failed: %s", error)
            stream.in_flight = None
            stream.retry_at = now + RETRY_DELAY

    def _acknowledged(self, stream, chunk, reply):
        if stream.in_flight is not chunk:
            return  # a stale ack for a chunk already resent
        stream.in_flight = None
        ok = isinstance(reply, dict) and reply.get("ok")
        code = (reply or {}).get("error", {}).get("code") if isinstance(reply, dict) else None
        if not ok and code in (None, "internal", "rate_limited"):
            stream.retry_at = time.monotonic() + RETRY_DELAY  # the server may take it later
            return
        if not ok:
            log.warning("server refused chunk %s of %s: %s", chunk["seq"], chunk["commandId"], reply)
        stream.sealed.popleft()
        self._buffered_chars -= len(chunk["data"])
        if stream.finished and not stream.sealed and not stream.text:
            del self._streams[stream.command_id]
            self._forget(stream)

    def _path(self, command_id):
        return os.path.join(self.state_dir, f"{command_id}.jsonl")

    def _persist(self, stream, chunk):
        """Append the chunk to its command's file: one write() on a descriptor kept open."""
        if not self.state_dir:
            return
        if stream.file is None:
            stream.file = os.open(self._path(stream.command_id), _APPEND_FLAGS, 0o600)
        line = memoryview((json.dumps(chunk, separators=(",", ":")) + "\n").encode())
        while line:
            line = line[os.write(stream.file, line) :]

    def _close_file(self, stream):
        if stream.file is not None:
            os.close(stream.file)
            stream.file = None

    def _forget(self, stream):
        self._close_file(stream)
        if self.state_dir:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._path(stream.command_id))

    def _recover_file(self, path):
        chunks = []
        with open(path, encoding="utf-8") as file:
            for line in file:
                try:
                    chunks.append(json.loads(line))
                except ValueError:
                    break  # a torn last line from a crash mid-write
        if not chunks:
            os.remove(path)
            return
        first = chunks[0]
        with self._cond:
            stream = self._stream(first["sessionId"], first["commandId"])
            stream.sealed.extend(chunks)
            self._buffered_chars += sum(len(chunk["data"]) for chunk in chunks)
            stream.next_seq = chunks[-1]["seq"] + 1
            stream.finished = True
            if not chunks[-1]["isComplete"]:
                error = {"code": "agent_lost", "message": "The agent restarted during this command."}
                self._seal(stream, complete=True, error=error)
            self._cond.notify_all()
        log.info("recovered %d unsent chunks of command %s", len(chunks), first["commandId"])
