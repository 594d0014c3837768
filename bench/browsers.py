"""Load-client process: many browsers in one asyncio process (see sio_lite).

    python bench/browsers.py --port P --target tether|bare --browsers N --mode MODE [...]

Modes:
  stream   count messages (no JSON decoding) until each browser has the final one
  text     decode every message, rebuild the text, check it against --deltas words
  latency  decode every message, latency of every `|<monotonic ns>|` stamp in its text
  idle     open N connections (to /web for Tether) and hold them; report at checkpoints

Talks to the orchestrator in lines: prints `READY {json}` once every browser is
connected (and, for Tether, the first has started a command with execute_command
and the others have subscribed to its session), then `RESULT {json}` when every
browser has the end of the stream or --timeout passed. In idle mode it prints
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

    def __init__(self):
        self.count = 0
        self.chars = 0
        self.t_first = None
        self.t_last = None
        self.done = False
        self.parts = []
        self.latencies = []
        self.seqs_ok = True
        self.last_seq = 0


def make_handler(options, finished):
    tether = options.target == "tether"
    event = b'["command_result"' if tether else b'["chunk"'
    not_last = b'"status":"streaming"' if tether else None
    decode = options.mode in ("text", "latency")

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
                state.latencies.extend((stamp - int(t)) / 1e6 for t in STAMP.findall(text))
            last = data.get("status") != "streaming" if tether else data.get("end")
        else:
            last = (not_last not in rest) if tether else (b'"end":' in rest)
        if last and not state.done:
            state.done = True
            finished()

    return on_event


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
        client.state["browser"] = Browser()
    ready = {"connected": len(clients), "connect_seconds": seconds, "compressed": clients[0].ws.compressed}
    if options.target == "tether":
        reply = await clients[0].call(
            "execute_command", {"type": "execute_command", "projectId": options.project, "command": "bench"}
        )
        if not reply.get("ok"):
            say("ERROR", {"execute_command": reply})
            return
        subscribe = {"type": "subscribe", "sessionId": reply["sessionId"], "afterSeq": 0}
        acks = await asyncio.gather(*(c.call("subscribe", subscribe, 30) for c in clients[1:]))
        bad = [a for a in acks if not a.get("ok")]
        if bad:
            say("ERROR", {"subscribe": bad[0]})
            return
        ready.update(sessionId=reply["sessionId"], commandId=reply["commandId"])
    cpu_before = common.own_cpu_seconds()
    say("READY", ready)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_done, options.timeout)
    say("RESULT", summarise(options, clients, common.own_cpu_seconds() - cpu_before))
    for client in clients:
        client.close()


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
