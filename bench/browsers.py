"""Load-client process: many browsers in one asyncio process (see sio_lite).

    python bench/browsers.py --port P --target tether|bare --browsers N --mode MODE [...]

Modes:
  stream   count messages (no JSON decoding) until each browser has the final one
  text     decode every message, rebuild the text, check it against --deltas words
  latency  decode every message, latency of every `|<monotonic ns>|` stamp in its text
           (with --stamps model: of every `@<epoch us>` stamp, the stand-in model's
           `paced:` directive, so the real agent and Claude Code can be measured)
  idle     open N connections (to /web for Tether) and hold them; report at checkpoints

Talks to the orchestrator in lines: prints `READY {json}` once every browser is
connected (and, for Tether, the first has started a command with execute_command
and the others have subscribed to its session), then `RESULT {json}` when every
browser has the end of the stream or --timeout passed.

A follow-up in an existing session (--session, --after-seq): every browser
subscribes from --after-seq, and with --go the first one sends --command only
when GO arrives on stdin (so the orchestrator can start its clocks and samplers
first). RESULT then also says which command ran and the session's last seq. In idle mode it prints
`AT {json}` at each checkpoint and waits for `NEXT` on stdin, and after the last
one waits for `EXIT`.
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.sio_lite import SioClient, connect_many  # noqa: E402

STAMP = re.compile(r"\|(\d+)\|")
MODEL_STAMP = re.compile(r"@(\d+)")  # agent_client.standin's paced: deltas, microseconds since the epoch
# CLOCK_REALTIME - CLOCK_MONOTONIC, read once: converts a receipt's monotonic stamp to the epoch.
EPOCH_OFFSET_NS = time.time_ns() - time.monotonic_ns()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", choices=("tether", "bare"), required=True)
    parser.add_argument("--browsers", type=int, default=1)
    parser.add_argument("--mode", choices=("stream", "text", "latency", "idle"), default="stream")
    parser.add_argument("--deflate", type=int, default=0, help="1: offer permessage-deflate like a browser")
    parser.add_argument("--cookie", help="Tether session cookie")
    parser.add_argument("--project", help="Tether project id")
    parser.add_argument("--deltas", type=int, default=0, help="text mode: words expected")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=50, help="handshakes in flight at once")
    parser.add_argument("--checkpoints", default="", help="idle mode: e.g. 1000,5000")
    parser.add_argument("--connect-timeout", type=float, default=15.0)
    parser.add_argument("--command", default="bench", help="Tether: the prompt the first browser sends")
    parser.add_argument("--session", help="Tether: a session to continue (follow-up turn)")
    parser.add_argument("--after-seq", type=int, default=0, help="with --session: its last seq so far")
    parser.add_argument("--go", action="store_true", help="Tether: send the command only on GO")
    parser.add_argument("--stamps", choices=("producer", "model"), default="producer")
    return parser.parse_args(argv)


class Stdin:
    """Lines from the orchestrator, as an asyncio queue."""

    def __init__(self, loop):
        self.queue = asyncio.Queue()
        self.loop = loop
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in sys.stdin:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, line.strip())
        self.loop.call_soon_threadsafe(self.queue.put_nowait, "EXIT")

    async def wait_for(self, word):
        while (await self.queue.get()) != word:
            pass


def say(tag, data=None):
    print(tag + ("" if data is None else " " + json.dumps(data)), flush=True)


class Browser:
    """What one browser received."""

    __slots__ = ("count", "chars", "t_first", "t_last", "done", "parts", "latencies", "seqs_ok", "last_seq")

    def __init__(self, last_seq=0):
        self.count = 0
        self.chars = 0
        self.t_first = None
        self.t_last = None
        self.done = False
        self.parts = []
        self.latencies = []
        self.seqs_ok = True
        self.last_seq = last_seq


def make_handler(options, finished):
    tether = options.target == "tether"
    event = b'["command_result"' if tether else b'["chunk"'
    not_last = b'"status":"streaming"' if tether else None
    decode = options.mode in ("text", "latency")
    latency_of = model_latencies if options.stamps == "model" else producer_latencies

    def on_event(client, rest):
        if not rest.startswith(event):
            return
        state = client.state["browser"]
        stamp = client.stamp
        if state.t_first is None:
            state.t_first = stamp
        state.t_last = stamp
        state.count += 1
        if decode:
            data = json.loads(rest)[1]
            text = data["response"] if tether else data["d"]
            state.chars += len(text)
            if tether:
                if data["seq"] != state.last_seq + 1:
                    state.seqs_ok = False
                state.last_seq = data["seq"]
            if options.mode == "text":
                state.parts.append(text)
            else:
                state.latencies.extend(latency_of(stamp, text))
            last = data.get("status") != "streaming" if tether else data.get("end")
        else:
            last = (not_last not in rest) if tether else (b'"end":' in rest)
        if last and not state.done:
            state.done = True
            finished()

    return on_event


def producer_latencies(stamp, text):
    """ms from each `|<monotonic ns>|` in text to the receipt stamp (monotonic ns)."""
    return [(stamp - int(t)) / 1e6 for t in STAMP.findall(text)]


def model_latencies(stamp, text):
    """ms from each `@<epoch us>` the stand-in model wrote to the receipt stamp (monotonic ns)."""
    now_us = (stamp + EPOCH_OFFSET_NS) / 1000
    return [(now_us - int(t)) / 1000 for t in MODEL_STAMP.findall(text)]


async def stream(options, stdin):
    loop = asyncio.get_running_loop()
    all_done = loop.create_future()
    remaining = [options.browsers]

    def finished():
        remaining[0] -= 1
        if remaining[0] == 0 and not all_done.done():
            all_done.set_result(True)

    on_event = make_handler(options, finished)
    clients, failures, seconds = await connect_many(
        lambda i: new_client(options, on_event),
        options.browsers,
        options.concurrency,
        options.connect_timeout,
    )
    if failures:
        say("ERROR", {"connect_failures": len(failures), "first": failures[0]})
        return
    for client in clients:
        client.state["browser"] = Browser(options.after_seq)
    ready = {"connected": len(clients), "connect_seconds": seconds, "compressed": clients[0].ws.compressed}
    reply = {}
    if options.target == "tether" and options.session:
        if not await subscribe_all(clients, options.session, options.after_seq):
            return
        ready["sessionId"] = options.session
    elif options.target == "tether":
        reply = await execute(clients[0], options)
        if not reply.get("ok"):
            return
        if not await subscribe_all(clients[1:], reply["sessionId"], 0):
            return
        ready.update(sessionId=reply["sessionId"], commandId=reply["commandId"])
    cpu_before = common.own_cpu_seconds()
    say("READY", ready)
    t_exec = None
    if options.session:
        if options.go:
            await stdin.wait_for("GO")
        t_exec = time.monotonic_ns()
        reply = await execute(clients[0], options)
        if not reply.get("ok"):
            return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_done, options.timeout)
    result = summarise(options, clients, common.own_cpu_seconds() - cpu_before)
    result.update(t_exec=t_exec, sessionId=reply.get("sessionId"), commandId=reply.get("commandId"))
    say("RESULT", result)
    for client in clients:
        client.close()


async def execute(client, options, patience=60.0):
    """Send the command (waiting while the agent is still connecting); says ERROR on failure."""
    payload = {"type": "execute_command", "projectId": options.project, "command": options.command}
    if options.session:
        payload["sessionId"] = options.session
    deadline = time.monotonic() + patience
    while True:
        reply = await client.call("execute_command", payload, 30)
        offline = (reply.get("error") or {}).get("code") == "agent_offline"
        if not offline or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    if not reply.get("ok"):
        say("ERROR", {"execute_command": reply})
    return reply


async def subscribe_all(clients, session_id, after_seq):
    subscribe = {"type": "subscribe", "sessionId": session_id, "afterSeq": after_seq}
    acks = await asyncio.gather(*(c.call("subscribe", subscribe, 30) for c in clients))
    bad = [a for a in acks if not a.get("ok")]
    if bad:
        say("ERROR", {"subscribe": bad[0]})
    return not bad


def summarise(options, clients, cpu):
    browsers = [c.state["browser"] for c in clients]
    result = {
        "browsers": [
            {"count": b.count, "chars": b.chars, "t_first": b.t_first, "t_last": b.t_last, "done": b.done}
            for b in browsers
        ],
        "client_cpu_seconds": cpu,
        "bytes_in": sum(c.ws.bytes_in for c in clients),
        "seqs_ok": all(b.seqs_ok for b in browsers),
        "last_seq": max(b.last_seq for b in browsers),
    }
    if options.mode == "text" and options.deltas:
        expected = " ".join(f"w{i}" for i in range(options.deltas))
        result["text_ok"] = all("".join(b.parts) == expected for b in browsers)
    if options.mode == "latency":
        latencies = [x for b in browsers for x in b.latencies]
        result["latency_ms"] = {
            "n": len(latencies),
            "p50": common.percentile(latencies, 50),
            "p90": common.percentile(latencies, 90),
            "p99": common.percentile(latencies, 99),
            "max": max(latencies) if latencies else None,
        }
    return result


def new_client(options, on_event=None):
    headers = {"Origin": f"http://{common.HOST}:{options.port}"}
    if options.target == "tether":
        headers["Cookie"] = f"session={options.cookie}"
    namespace = "/web" if options.target == "tether" else "/"
    return SioClient(
        common.HOST,
        options.port,
        namespace,
        headers=headers,
        deflate=bool(options.deflate),
        on_event=on_event,
    )


async def idle(options, stdin):
    checkpoints = sorted(common.csv_ints(options.checkpoints) or [options.browsers])
    clients, failures = [], []
    start = 0
    for target in checkpoints:
        began = time.monotonic()
        more, failed, seconds = await connect_many(
            lambda i: new_client(options), target - start, options.concurrency, options.connect_timeout
        )
        clients += more
        failures += failed
        start = target
        say(
            "AT",
            {
                "target": target,
                "connected": len(clients),
                "failures": len(failures),
                "first_failure": failures[0] if failures else None,
                "batch_connected": len(more),
                "batch_seconds": seconds,
                "batch_rate": len(more) / seconds if seconds else None,
                "elapsed": time.monotonic() - began,
                "compressed": bool(clients) and clients[0].ws.compressed,
            },
        )
        await stdin.wait_for("NEXT")
    open_now = sum(1 for c in clients if not c.ws.closed.done())
    say("RESULT", {"connected": len(clients), "still_open": open_now, "failures": len(failures)})
    await stdin.wait_for("EXIT")
    for client in clients:
        client.close()


async def main():
    options = parse_args()
    common.raise_fd_limit(options.browsers + 1000)
    stdin = Stdin(asyncio.get_running_loop())
    if options.mode == "idle":
        await idle(options, stdin)
    else:
        await stream(options, stdin)


if __name__ == "__main__":
    asyncio.run(main())
