"""Fan-out throughput in messages: one producer as fast as it can, 1/10/100 browsers.

    .venv/bin/python bench/fanout.py [--quick] [--modes eventlet,gevent] [--browsers 1,10,100]
        [--targets bare,tether,tether-nostore] [--deflate 0,1] [--repeat N] [--size 100]

Targets: `bare` is a python-socketio relay with nothing else (bench/bare_relay.py);
`tether` is the real server (bench/tether_server.py = wsgi.py's entry) with chunk
storage in SQLite; `tether-nostore` is the same server with storage replaced by
in-memory numbering (the storage cost is the gap between the two).

Tether's producer sends command_response chunks with up to --window unacknowledged
(the agent's protocol is acknowledged; the real agent keeps one in flight and
coalesces, which is what coalesce.py measures). The agent's rate limit (1,000
chunks/s by default) is lifted here so that the relay, not the limiter, is
measured. Each browser counts messages; the producer's first send starts the clock,
each browser's last receipt stops its own.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, trial  # noqa: E402

# Messages per trial by number of browsers: a few seconds each on this machine.
COUNTS = {1: 10_000, 10: 4_000, 100: 1_500}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer messages, one compression setting")
    parser.add_argument("--modes", default="eventlet,gevent")
    parser.add_argument("--browsers", default="1,10,100")
    parser.add_argument("--targets", default="bare,tether,tether-wal,tether-nostore")
    parser.add_argument("--deflate", default="0,1", help="0: no compression offered, 1: offered")
    parser.add_argument("--repeat", type=int, default=1, help="trials per cell; the median is kept")
    parser.add_argument("--size", type=int, default=100, help="characters of text per message")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the message counts")
    return parser.parse_args(argv)


def count_for(browsers, options):
    base = COUNTS.get(browsers) or max(1000, 20_000 // browsers)
    return max(200, int(base * options.scale * (0.4 if options.quick else 1.0)))


def measure(server, workdir, browsers, deflate, options):
    count = count_for(browsers, options)
    producer = ["--mode", "burst", "--count", str(count), "--size", str(options.size)]
    producer += ["--window", str(options.window)]
    reading = trial.run_stream(
        server, workdir, browsers, producer, ["--mode", "stream", "--deflate", str(deflate)]
    )
    out = trial.rates(reading, chars_per_browser=count * options.size)
    out["count"] = count
    return out


def main(argv=None):
    options = parse_args(argv)
    if options.quick:
        options.deflate = "0"
    common.raise_fd_limit()
    workdir = common.Workdir()
    results = []
    targets = common.csv_words(options.targets)
    for mode in common.csv_words(options.modes):
        servers = {}
        try:
            # Every relay runs side by side and the trials alternate between them, so a
            # burst of other work on the machine hits them all alike.
            for target in targets:
                extra = {"agent_rate": 1_000_000} if target != "bare" else {}
                servers[target] = common.Server(target, mode, workdir, **extra).start()
            for deflate in common.csv_ints(options.deflate):
                for browsers in common.csv_ints(options.browsers):
                    trials = {target: [] for target in targets}
                    for _ in range(options.repeat):
                        for target in targets:
                            trials[target].append(
                                measure(servers[target], workdir, browsers, deflate, options)
                            )
                    for target in targets:
                        best = _median_trial(trials[target])
                        best.update(mode=mode, target=target, deflate=deflate, trials=options.repeat)
                        results.append(best)
                        print(_line(best), flush=True)
        finally:
            for server in servers.values():
                server.stop()
    print()
    report(results)
    common.save("fanout", {"options": vars(options), "results": results})
    return results


def _median_trial(trials):
    ordered = sorted(trials, key=lambda t: t.get("messages_total") or 0)
    chosen = dict(ordered[len(ordered) // 2])
    chosen["all_totals"] = [t.get("messages_total") for t in trials]
    return chosen


def _line(r):
    return (
        f"  {r['mode']:8} {r['target']:14} deflate={r['deflate']} browsers={r.get('browsers', '?'):>3}: "
        f"{common.fmt(r.get('messages_per_browser'))} msg/s per browser, "
        f"{common.fmt(r.get('messages_total'))} total, cpu server {common.fmt(r.get('server_cpu'), 2)}"
        f" clients {common.fmt(r.get('client_cpu'), 2)} machine {common.fmt(r.get('machine_cpu'), 2)}"
        + ("" if r.get("complete") else "  INCOMPLETE")
        + (f"  errors={r['producer_errors']}" if r.get("producer_errors") else "")
    )


def find(results, **keys):
    for r in results:
        if all(r.get(k) == v for k, v in keys.items()):
            return r
    return None


def report(results):
    rows = []
    for r in results:
        if r["target"] == "bare":
            continue
        bare = find(results, mode=r["mode"], target="bare", deflate=r["deflate"], browsers=r.get("browsers"))
        base = bare.get("messages_per_browser") if bare else None
        rows.append(
            [
                r["mode"],
                r["target"],
                "on" if r["deflate"] else "off",
                r.get("browsers", "?"),
                common.fmt(r.get("messages_per_browser")),
                common.fmt(base),
                common.fmt(common.ratio(r.get("messages_per_browser"), base), 2),
                common.fmt(r.get("messages_total")),
                common.fmt(bare.get("messages_total") if bare else None),
                common.fmt(r.get("server_cpu"), 2),
            ]
        )
    common.table(
        [
            "mode",
            "relay",
            "deflate",
            "browsers",
            "msg/s/browser",
            "bare",
            "x bare",
            "deliveries/s",
            "bare total",
            "srv cpu",
        ],
        rows,
        title="Fan-out in messages (target: >= 0.8x bare)",
    )


if __name__ == "__main__":
    main()
