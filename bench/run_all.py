"""Run every benchmark with reasonable defaults, then print where the targets stand.

    .venv/bin/python bench/run_all.py [--quick]
        [--only followup,outbox,coalesce,realpath,latency,fanout,bigchunks,capacity,page]
        [--modes eventlet,gevent]

About 25 minutes on 2 cores (--quick: about 8). Each benchmark prints its own table
and writes bench/results/<name>-<time>.json; this script adds
bench/results/summary-<time>.json with the target verdicts.
"""

import argparse
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import capacity, coalesce, common, fanout, followup, latency, outbox, page, realpath  # noqa: E402

ALL = ("followup", "outbox", "coalesce", "realpath", "latency", "fanout", "bigchunks", "capacity", "page")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(ALL))
    parser.add_argument("--modes", default="eventlet,gevent")
    return parser.parse_args(argv)


def plan(options):
    quick = ["--quick"] if options.quick else []
    modes = ["--modes", options.modes]
    return {
        "followup": lambda: followup.main(quick),
        "outbox": lambda: outbox.main(quick),
        "coalesce": lambda: coalesce.main(quick + modes),
        "realpath": lambda: realpath.main(quick + modes),
        "latency": lambda: latency.main(quick + modes),
        "fanout": lambda: fanout.main(quick + modes),
        # The relay's own text capacity once chunks are big (what coalescing makes of
        # a fast stream): stop-and-wait like the agent, 8,000 characters a chunk.
        "bigchunks": lambda: fanout.main(
            quick
            + modes
            + ["--size", "8000", "--window", "1", "--browsers", "1,20", "--deflate", "0", "--scale", "0.1"]
        ),
        "capacity": lambda: capacity.main(quick + modes),
        # The chat page in Chromium (one server mode: the page is what is measured).
        "page": lambda: page.main(quick),
    }


def main(argv=None):
    options = parse_args(argv)
    common.raise_fd_limit()
    out = {}
    steps = plan(options)
    for name in common.csv_words(options.only):
        print(f"\n=== {name} " + "=" * 60, flush=True)
        try:
            out[name] = steps[name]()
        except Exception:
            traceback.print_exc()
            out[name] = None
    verdicts = summarise(out)
    common.save("summary", {"options": vars(options), "verdicts": verdicts})


def _pick(rows, **keys):
    return [r for r in rows or [] if all(r.get(k) == v for k, v in keys.items())]


def summarise(out):
    verdicts = []

    def verdict(name, mode, value, goal, met, detail=""):
        verdicts.append(
            {"target": name, "mode": mode, "value": value, "goal": goal, "met": met, "detail": detail}
        )

    fan = out.get("fanout") or []
    for r in _pick(fan, deflate=0):
        if r["target"] != "tether":
            continue
        bare = _pick(fan, mode=r["mode"], target="bare", deflate=0, browsers=r.get("browsers"))
        x = common.ratio(r.get("messages_per_browser"), bare[0].get("messages_per_browser") if bare else None)
        verdict(
            f"fan-out >= 0.8x bare in messages, {r.get('browsers')} browsers",
            r["mode"],
            f"{common.fmt(x, 2)}x",
            ">= 0.8x",
            x is not None and x >= 0.8,
        )
    coalesced = (out.get("coalesce") or (None, None))[0] or []
    for r in _pick(coalesced, target="tether", pace="max", browsers=20, deflate=0):
        v = r.get("deltas_per_browser")
        verdict(
            "text/s above Node's 47,000 msg/s (20 browsers, fed at once)",
            r["mode"],
            f"{common.fmt(v)} deltas/s",
            "> 47,000",
            bool(v and v > common.NODE_SOCKETIO_MSGS),
        )
    for r in _pick(coalesced, target="tether", pace="claude", browsers=20, deflate=0):
        x = r.get("x_claude")
        verdict(
            "20,000 deltas to 20 browsers vs Claude Code alone",
            r["mode"],
            f"{common.fmt(x, 2)}x",
            "<= 1.2x",
            bool(x and x <= coalesce.TARGET_RATIO),
        )
    for r in _pick(out.get("realpath"), path="current", measure="answer", browsers=20):
        x = r.get("x_alone")
        verdict(
            "real path: 20,000 deltas to 20 browsers vs Claude Code alone, warm",
            r["mode"],
            f"{common.fmt(x, 2)}x",
            f"<= {realpath.TARGET_RATIO}x",
            bool(r.get("met")),
        )
    for r in _pick(out.get("realpath"), path="current", measure="latency"):
        p50, p99 = common.fmt(r.get("p50_over_alone"), 1), common.fmt(r.get("p99_over_alone"), 1)
        verdict(
            f"real path: model to browser over alone's, {r['browsers']} browsers, 200 deltas/s",
            r["mode"],
            f"p50 +{p50} / p99 +{p99} ms",
            f"+{realpath.TARGET_P50_MS:g} / +{realpath.TARGET_P99_MS:g} ms",
            bool(r.get("met")),
        )
    for r in _pick(out.get("latency"), target="tether", browsers=100, deflate=0):
        verdict(
            "p99 added latency, 100 browsers, 200 chunks/s",
            r["mode"],
            f"{common.fmt(r.get('p99'), 1)} ms",
            "<= 10 ms",
            bool(r.get("p99") is not None and r["p99"] <= latency.TARGET_MS),
        )
    for r in _pick(out.get("latency"), target="tether", browsers=1, deflate=0):
        bare = _pick(out.get("latency"), target="bare", mode=r["mode"], browsers=1, deflate=0)
        if not bare:
            continue
        p50, bare_p50 = r.get("p50"), bare[0].get("p50")
        over = p50 - bare_p50 if p50 is not None and bare_p50 is not None else None
        verdict(
            "p50 at 1 browser, 200 chunks/s, over the bare relay's",
            r["mode"],
            f"+{common.fmt(over, 1)} ms",
            "<= +2 ms",
            over is not None and over <= 2.0,
        )
        x = common.ratio(r.get("server_cpu"), bare[0].get("server_cpu"))
        verdict(
            "server CPU per stored chunk vs bare per relayed message (200/s, 1 browser)",
            r["mode"],
            f"{common.fmt(x, 2)}x",
            "<= 2x",
            x is not None and x <= 2.0,
        )
    capacity_rows = out.get("capacity")
    for r in _pick(capacity_rows, server="tether", config="as shipped"):
        bare = _pick(capacity_rows, server="bare", mode=r["mode"], target=r["target"], config="as shipped")
        if r["target"] != max(row["target"] for row in capacity_rows) or not bare:
            continue
        connects = common.ratio(r.get("batch_rate"), bare[0].get("batch_rate"))
        verdict(
            f"connects/s vs bare ({r['target']:,} idle browsers)",
            r["mode"],
            f"{common.fmt(connects, 2)}x",
            ">= 0.8x",
            connects is not None and connects >= 0.8,
        )
        memory = common.ratio(r.get("kb_per_connection"), bare[0].get("kb_per_connection"))
        verdict(
            f"KB per idle connection vs bare ({r['target']:,})",
            r["mode"],
            f"{common.fmt(memory, 2)}x",
            "<= 1.1x",
            memory is not None and memory <= 1.1,
        )
    for r in _pick(out.get("capacity"), server="tether"):
        if r["target"] < 5000 or r["config"] == "eventlet default":
            continue
        verdict(
            "5,000 idle browsers in one process",
            r["mode"],
            f"{r['connected']:,} in {common.fmt(r['rss_mb'])} MB",
            f"< {capacity.TARGET_MB} MB",
            r["connected"] >= 5000 and r["rss_mb"] < capacity.TARGET_MB,
            r["config"],
        )
    for target, measured, goal, met in out.get("page") or []:
        verdict(f"page: {target}", "gevent", measured, goal, met)
    if verdicts:
        print()
        common.table(
            ["target", "mode", "measured", "goal", "verdict"],
            [
                [v["target"], v["mode"], v["value"], v["goal"], "met" if v["met"] else "MISSED"]
                for v in verdicts
            ],
            title="Targets",
        )
    return verdicts


if __name__ == "__main__":
    main()
