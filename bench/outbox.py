"""The agent's Outbox alone: what feeding it one delta costs Claude Code's worker thread.

    .venv/bin/python bench/outbox.py [--deltas 20000] [--ack-ms 3]

No server: `send` is a stub that acknowledges each chunk --ack-ms later (a healthy
link), or never (a stalled link: the server is slow, or the socket is down and the
agent keeps buffering). Outbox.text() runs in the session's worker thread, between
Claude Code's deltas, so its cost caps how fast an answer can reach the server.
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--deltas", default="2000,20000")
    parser.add_argument("--ack-ms", type=float, default=3.0)
    return parser.parse_args(argv)


def feed(deltas, ack_after):
    from agent_client.outbox import Outbox

    chunks = []
    timers = []

    def send(chunk, on_ack):
        chunks.append(len(chunk["data"]))
        if ack_after is not None:
            timer = threading.Timer(ack_after, on_ack, [{"ok": True}])
            timers.append(timer)
            timer.start()

    box = Outbox(send, window=0.005)
    box.online()
    start = time.perf_counter()
    for i in range(deltas):
        box.text("s", "c", f" w{i}")
    seconds = time.perf_counter() - start
    box.close()
    for timer in timers:
        timer.cancel()
    return {
        "deltas": deltas,
        "seconds": seconds,
        "us_per_delta": seconds / deltas * 1e6,
        "chunks": len(chunks),
    }


def main(argv=None):
    options = parse_args(argv)
    counts = [2000, 5000] if options.quick else common.csv_ints(options.deltas)
    results = []
    for deltas in counts:
        for label, ack in (
            (f"acks in {options.ack_ms:g} ms", options.ack_ms / 1000),
            ("no ack (stalled)", None),
        ):
            r = feed(deltas, ack)
            r["link"] = label
            results.append(r)
    common.table(
        ["deltas", "link", "feed seconds", "us/delta", "deltas/s", "chunks sent meanwhile"],
        [
            [
                f"{r['deltas']:,}",
                r["link"],
                common.fmt(r["seconds"], 3),
                common.fmt(r["us_per_delta"], 1),
                common.fmt(r["deltas"] / r["seconds"]),
                r["chunks"],
            ]
            for r in results
        ],
        title="Outbox.text() cost per delta (Claude Code emits up to ~20,000 deltas/s)",
    )
    common.save("outbox", {"options": vars(options), "results": results})
    return results


if __name__ == "__main__":
    main()
