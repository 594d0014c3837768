"""The agent (`python -m agent_client ARGS...`) with the stamped deltas timed at three points on their way.

    python bench/agent_traced.py ARGS...

For bench/realpath.py --trace. The stand-in's `paced:` deltas carry the wall-clock
time the model wrote them (`@<epoch us>`); this wraps three functions of the agent
to note when each stamp passes:

  received  AgentClient.text: the runner hands the delta over (Claude Code, the SDK
            and the runner are behind it)
  sent      AgentClient._send_chunk: the Outbox sends the chunk holding it (python-
            socketio encodes it and queues it for its writer thread)
  written   websocket-client's WebSocket.send: the writer thread puts it on the socket
  acked     the server's acknowledgement of that chunk arrives (it has stored it)

`TRACE` on stdin prints `TRACE {json}` with p50/p90/p99 of each (ms after the stamp),
and when the first and the last delta of any kind were received (CLOCK_MONOTONIC ns)
and how many, then starts afresh. Nothing else changes: the agent runs as users run it.
"""

import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.getcwd())  # the checkout whose agent_client runs (bench/realpath.py sets the cwd)

STAMP = re.compile(r"@(\d+)")
EPOCH_OFFSET_NS = time.time_ns() - time.monotonic_ns()
POINTS = ("received", "sent", "written", "acked")
_lock = threading.Lock()
_seen = {point: [] for point in POINTS}
_deltas = {"count": 0, "t_first": None, "t_last": None}


def _count_delta():
    now = time.monotonic_ns()
    with _lock:
        _deltas["count"] += 1
        _deltas["t_first"] = _deltas["t_first"] or now
        _deltas["t_last"] = now


def _note(point, text):
    now_us = (time.monotonic_ns() + EPOCH_OFFSET_NS) / 1000
    found = [(now_us - int(stamp)) / 1000 for stamp in STAMP.findall(text)]
    if found:
        with _lock:
            _seen[point].extend(found)


def _percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def _report():
    with _lock:
        seen = {point: values[:] for point, values in _seen.items()}
        for values in _seen.values():
            values.clear()
        deltas = dict(_deltas)
        _deltas.update(count=0, t_first=None, t_last=None)
    summary = {
        point: {"n": len(v), **{f"p{p}": _percentile(v, p) for p in (50, 90, 99)}} if v else {"n": 0}
        for point, v in seen.items()
    }
    summary["deltas"] = deltas
    print("TRACE " + json.dumps(summary), flush=True)


def _wrap():
    import websocket

    from agent_client.client import AgentClient

    text, send_chunk, ws_send = AgentClient.text, AgentClient._send_chunk, websocket.WebSocket.send

    def traced_text(self, session_id, command_id, delta):
        _count_delta()
        _note("received", delta)
        return text(self, session_id, command_id, delta)

    def traced_send_chunk(self, chunk, on_ack):
        data = chunk.get("data") or ""
        _note("sent", data)

        def traced_on_ack(*reply):
            _note("acked", data)
            return on_ack(*reply)

        return send_chunk(self, chunk, traced_on_ack)

    def traced_ws_send(self, payload, *args, **kwargs):
        if isinstance(payload, str) and "command_response" in payload[:64]:
            # Only the chunk's text: the turn's last event repeats the whole answer.
            _note("written", json.loads(payload[payload.index("[") :])[1].get("data") or "")
        return ws_send(self, payload, *args, **kwargs)

    AgentClient.text = traced_text
    AgentClient._send_chunk = traced_send_chunk
    websocket.WebSocket.send = traced_ws_send


def _serve_stdin():
    for line in sys.stdin:
        if line.strip() == "TRACE":
            _report()


def main():
    _wrap()
    threading.Thread(target=_serve_stdin, daemon=True).start()
    from agent_client.__main__ import main as agent_main

    agent_main(sys.argv[1:])


if __name__ == "__main__":
    main()
