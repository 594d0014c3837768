"""Added latency at a steady 200 chunks/s: p50 and p99 from the agent's emit to each browser's receipt.

    .venv/bin/python bench/latency.py [--quick] [--modes eventlet,gevent] [--browsers 1,10,100]
        [--targets bare,tether,tether-wal,agent] [--rate 200] [--duration 4] [--deflate 0,1]

Every chunk's text carries the producer's CLOCK_MONOTONIC time (`|<ns>|`); each
browser subtracts it from the time its read reached the process. Targets:

  bare        the bare python-socketio relay: one `chunk` event per tick
  tether      Tether as shipped (SQLite file, one commit per batch), fed by a raw
              producer that behaves like the agent's outbox without its 5 ms window:
              one chunk in flight; what is produced meanwhile rides in the next chunk
  tether-wal  the same with SQLite in WAL mode, synchronous=NORMAL
  agent       Tether fed by the real agent (AgentClient + Outbox, python-socketio client)
              with one delta per tick: the latency a user sees, coalescing window included

The browsers of a trial share one client process, so the receipt of the 100th
browser also waits for the client to read the 99 before it (a fraction of a ms).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, trial  # noqa: E402

TARGET_MS = 10.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--modes", default="eventlet,gevent")
    parser.add_argument("--browsers", default="1,10,100")
    parser.add_argument("--targets", default="bare,tether,tether-wal,agent")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--deflate", default="0,1")
    parser.add_argument("--size", type=int, default=100)
    return parser.parse_args(argv)


def server_kind(target):
    return "tether" if target == "agent" else target


def measure(server, workdir, target, browsers, deflate, options):
    if target == "agent":
        producer = [
            "--mode",
            "outbox",
            "--stamp",
            "--rate",
            str(options.rate),
            "--duration",
            str(options.duration),
        ]
    else:
        producer = ["--mode", "paced", "--rate", str(options.rate), "--duration", str(options.duration)]
        producer += ["--size", str(options.size)]
    browser = ["--mode", "latency", "--deflate", str(deflate)]
    reading = trial.run_stream(server, workdir, browsers, producer, browser)
    latency = reading["browsers"].get("latency_ms") or {}
    out = trial.rates(reading)
    out.update(
        latency,
        expected=int(options.rate * options.duration) * browsers,
        seqs_ok=reading["browsers"].get("seqs_ok"),
        producer_errors=reading["producer"].get("errors"),
    )
    return out


def main(argv=None):
    options = parse_args(argv)
    if options.quick:
        options.deflate = "0"
        options.duration = min(options.duration, 2.0)
    common.raise_fd_limit()
    workdir = common.Workdir()
    results = []
    targets = common.csv_words(options.targets)
    for mode in common.csv_words(options.modes):
        servers = {}
        try:
            for kind in {server_kind(t) for t in targets}:
                servers[kind] = common.Server(kind, mode, workdir).start()
            for deflate in common.csv_ints(options.deflate):
                for browsers in common.csv_ints(options.browsers):
                    for target in targets:
                        r = measure(servers[server_kind(target)], workdir, target, browsers, deflate, options)
                        r.update(mode=mode, target=target, deflate=deflate, browsers=browsers)
                        results.append(r)
                        print(_line(r), flush=True)
        finally:
            for server in servers.values():
                server.stop()
    print()
    report(results)
    common.save("latency", {"options": vars(options), "results": results})
    return results


def _line(r):
    return (
        f"  {r['mode']:8} {r['target']:10} deflate={r['deflate']} browsers={r['browsers']:>3}: "
        f"p50 {common.fmt(r.get('p50'), 1)} ms, p99 {common.fmt(r.get('p99'), 1)} ms, "
        f"max {common.fmt(r.get('max'), 1)} ms ({r.get('n')}/{r.get('expected')} stamps)"
        f"  cpu server {common.fmt(r.get('server_cpu'), 2)} machine {common.fmt(r.get('machine_cpu'), 2)}"
    )


def report(results):
    rows = []
    for r in results:
        bare = next(
            (
                b
                for b in results
                if b["target"] == "bare"
                and b["mode"] == r["mode"]
                and b["deflate"] == r["deflate"]
                and b["browsers"] == r["browsers"]
            ),
            None,
        )
        p99 = r.get("p99")
        rows.append(
            [
                r["mode"],
                r["target"],
                "on" if r["deflate"] else "off",
                r["browsers"],
                common.fmt(r.get("p50"), 1),
                common.fmt(p99, 1),
                common.fmt(bare.get("p99") if bare else None, 1),
                common.fmt(common.ratio(p99, bare.get("p99") if bare else None), 1),
                ""
                if r["target"] == "bare" or r["browsers"] != 100
                else ("met" if p99 and p99 <= TARGET_MS else "MISSED"),
                f"{r.get('n')}/{r.get('expected')}",
            ]
        )
    common.table(
        [
            "mode",
            "relay",
            "deflate",
            "browsers",
            "p50 ms",
            "p99 ms",
            "bare p99",
            "x bare",
            "target",
            "stamps",
        ],
        rows,
        title=f"Added latency at 200 chunks/s (target: p99 <= {TARGET_MS:.0f} ms at 100 browsers)",
    )


if __name__ == "__main__":
    main()
