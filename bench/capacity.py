"""Idle browsers held by one server process: memory per connection and the connect rate.

    .venv/bin/python bench/capacity.py [--quick] [--modes eventlet,gevent] [--checkpoints 1000,5000]
        [--targets bare,tether] [--deflate 0] [--concurrency 50]

Each browser opens a WebSocket and connects to /web with the session cookie of one
logged-in user (one login shared by every connection: the cost measured is the
connection's, not the login's), then sits idle, answering Engine.IO pings (every
10 s). At each checkpoint the server's resident memory is read after --settle
seconds: per connection = (RSS now - RSS before any connection) / connections.

Under eventlet, Tether is also started with eventlet.wsgi's own default cap of 1,024
simultaneous connections (what socketio.run gives when nothing passes max_size, as
wsgi.py did before it read TETHER_MAX_CONNECTIONS): the probe opens --cap-probe
connections and counts those that never get an answer. "as shipped" is wsgi.py's
behaviour now: max_size = TETHER_MAX_CONNECTIONS, 20,000 by default.
Target: 5,000 idle browsers under 400 MB in one process.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, trial  # noqa: E402

TARGET_MB = 400
EVENTLET_DEFAULT = 1024


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="checkpoints 500,1000 and no cap probe")
    parser.add_argument("--modes", default="eventlet,gevent")
    parser.add_argument("--checkpoints", default="1000,5000")
    parser.add_argument("--targets", default="bare,tether")
    parser.add_argument("--deflate", default="0", help="0,1 to compare; browsers offer it")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="handshakes in flight (eventlet's backlog is 50)"
    )
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument(
        "--cap-probe", type=int, default=1_200, help="connections tried against stock eventlet"
    )
    parser.add_argument("--connect-timeout", type=float, default=8.0)
    parser.add_argument("--probe-only", action="store_true", help="only the eventlet 1,024 cap probe")
    return parser.parse_args(argv)


def hold(server, workdir, checkpoints, deflate, options):
    """Open connections up to each checkpoint; returns one row per checkpoint."""
    args = [common.PY, trial.BROWSERS, "--port", str(server.port), "--mode", "idle"]
    args += ["--target", "bare" if server.kind == "bare" else "tether", "--deflate", str(deflate)]
    args += ["--browsers", str(max(checkpoints)), "--checkpoints", ",".join(map(str, checkpoints))]
    args += ["--concurrency", str(options.concurrency), "--connect-timeout", str(options.connect_timeout)]
    if server.kind != "bare":
        args += ["--cookie", server.cookie]
    time.sleep(1.0)
    base_kb = server.rss_kb()
    cpu = server.cpu_seconds()
    rows = []
    child = common.Child(
        args, workdir.file(f"idle-{server.kind}-{server.mode}-{server.port}.log"), name="idle"
    )
    try:
        for _ in checkpoints:
            at = child.expect("AT", 900)
            time.sleep(options.settle)
            rss = server.rss_kb()
            connected = at["connected"]
            rows.append(
                {
                    **at,
                    "base_rss_mb": base_kb / 1024,
                    "rss_mb": rss / 1024,
                    "kb_per_connection": (rss - base_kb) / connected if connected else None,
                    "server_cpu_seconds": server.cpu_seconds() - cpu,
                }
            )
            print(_line(server, deflate, rows[-1]), flush=True)
            child.send("NEXT")
        child.expect("RESULT", 120)
        child.send("EXIT")
    finally:
        child.stop()
    return rows


def _line(server, deflate, r):
    return (
        f"  {server.mode:8} {server.kind:7} {server.label:16} deflate={deflate}: "
        f"{r['connected']:,}/{r['target']:,} connected ({r['failures']} failed), "
        f"RSS {r['rss_mb']:.0f} MB ({common.fmt(r['kb_per_connection'], 1)} KB/conn), "
        f"{common.fmt(r['batch_rate'])} connects/s"
    )


def run_one(kind, mode, workdir, checkpoints, deflate, options, label, **extra):
    server = common.Server(kind, mode, workdir, **extra).start()
    server.label = label
    try:
        rows = hold(server, workdir, checkpoints, deflate, options)
    finally:
        server.stop()
    return [dict(r, mode=mode, server=kind, config=label, deflate=deflate) for r in rows]


def main(argv=None):
    options = parse_args(argv)
    checkpoints = common.csv_ints(options.checkpoints)
    if options.quick:
        checkpoints = [500, 1000]
    common.raise_fd_limit(max(checkpoints) * 2 + 2000)
    workdir = common.Workdir()
    results = []
    for mode in common.csv_words(options.modes):
        for deflate in common.csv_ints(options.deflate):
            for kind in common.csv_words(options.targets):
                if mode == "eventlet" and kind == "tether" and (options.probe_only or not options.quick):
                    # eventlet's own cap: how many of --cap-probe connections get served at all.
                    cap = {"max_size": EVENTLET_DEFAULT}
                    probe = [options.cap_probe]
                    results += run_one(
                        kind, mode, workdir, probe, deflate, options, "eventlet default", **cap
                    )
                if not options.probe_only:
                    results += run_one(kind, mode, workdir, checkpoints, deflate, options, "as shipped")
    print()
    report(results)
    common.save("capacity", {"options": vars(options), "results": results})
    return results


def report(results):
    rows = []
    for r in results:
        verdict = ""
        if r["server"] == "tether" and r["target"] >= 5000 and r["config"] == "as shipped":
            verdict = "met" if r["connected"] >= 5000 and r["rss_mb"] < TARGET_MB else "MISSED"
        rows.append(
            [
                r["mode"],
                r["server"],
                r["config"],
                "on" if r["deflate"] else "off",
                f"{r['connected']:,}/{r['target']:,}",
                r["failures"],
                common.fmt(r["rss_mb"]),
                common.fmt(r["kb_per_connection"], 1),
                common.fmt(r["batch_rate"]),
                verdict,
            ]
        )
    common.table(
        [
            "mode",
            "server",
            "config",
            "deflate",
            "connected",
            "failed",
            "RSS MB",
            "KB/conn",
            "connects/s",
            "target",
        ],
        rows,
        title=f"Idle browsers in one process (target: 5,000 under {TARGET_MB} MB)",
    )


if __name__ == "__main__":
    main()
