"""A 20,000-delta answer to N browsers, through the real agent's coalescing outbox.

    .venv/bin/python bench/coalesce.py [--quick] [--modes eventlet,gevent] [--browsers 1,20,100]
        [--targets bare,tether,tether-wal] [--paces claude,max] [--deflate 0,1] [--deltas 20000]

First Claude Code alone is timed on this machine (bench/followup.py: the real CLI
against the stand-in model, `deltas: 20000` on a live client): the time from its
first text delta to its last, and the offset of every delta. Then the same answer
goes through each relay to N browsers:

  tether, tether-wal  the real agent (AgentClient, Outbox: one chunk in flight, 5 ms
                      window, state files) with Claude Code replaced by a runner that
                      feeds the same words to the agent's sink
  bare                the bare relay, one `chunk` event per delta (no coalescing)

Paces: `claude` replays Claude Code's measured offsets; `max` feeds every delta at
once (the relay's own limit). The clock starts at the first delta and stops when
the last browser has the whole answer (Tether browsers check the text word for word).
Target: at Claude's pace, 20 browsers have it within 1.2x Claude Code's own time.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, followup, trial  # noqa: E402

TARGET_RATIO = 1.2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--modes", default="eventlet,gevent")
    parser.add_argument("--browsers", default="1,20,100")
    parser.add_argument("--targets", default="bare,tether,tether-wal")
    parser.add_argument("--paces", default="claude,max")
    parser.add_argument("--deflate", default="0,1")
    parser.add_argument("--deltas", type=int, default=20_000)
    parser.add_argument("--emit-samples", type=int, default=3)
    return parser.parse_args(argv)


def claude_pace(options, workdir):
    """Claude Code's own time and schedule for the answer (see followup.py)."""
    args = followup.parse_args(["--deltas", str(options.deltas), "--emit-samples", str(options.emit_samples)])
    emit = followup.run(args, emit=True, turns=False)["emit"]
    path = followup.schedule_file(emit, workdir.file("claude-schedule.json"))
    print(
        f"Claude Code alone: {options.deltas:,} deltas in {emit['emit_seconds']:.3f} s "
        f"({common.fmt(emit['deltas_per_second'])} deltas/s)",
        flush=True,
    )
    return emit, path


def measure(server, workdir, browsers, deflate, pace, schedule, options):
    tether = server.kind != "bare"
    producer = ["--mode", "outbox" if tether else "fanout", "--deltas", str(options.deltas)]
    if pace == "claude":
        producer += ["--schedule", schedule]
    browser = ["--mode", "text" if tether else "stream", "--deflate", str(deflate)]
    if tether:
        browser += ["--deltas", str(options.deltas)]
    reading = trial.run_stream(server, workdir, browsers, producer, browser)
    chars = sum(len(w) for w in ["w0"] + [f" w{i}" for i in range(1, options.deltas)])
    out = trial.rates(reading, chars_per_browser=chars)
    seconds = out.get("seconds")
    out.update(
        deltas_per_browser=options.deltas / seconds if seconds else None,
        deltas_total=options.deltas * browsers / seconds if seconds else None,
        text_ok=reading["browsers"].get("text_ok"),
        seqs_ok=reading["browsers"].get("seqs_ok"),
        messages_per_answer=common.median([b["count"] for b in reading["browsers"]["browsers"]]),
        feed_seconds=(reading["producer"]["t_fed"] - reading["producer"]["t0"]) / 1e9,
    )
    if tether and out.get("complete") is not False:
        # Every browser must have the whole answer, and bare ones every message.
        out["complete"] = out["complete"] and bool(out["text_ok"])
    elif not tether:
        out["complete"] = out.get("complete") and out["messages_per_answer"] == options.deltas
    return out


def main(argv=None):
    options = parse_args(argv)
    if options.quick:
        options.deflate, options.browsers, options.paces, options.emit_samples = "0", "20", "claude,max", 1
    common.raise_fd_limit()
    workdir = common.Workdir()
    paces = common.csv_words(options.paces)
    emit, schedule = claude_pace(options, workdir) if "claude" in paces else (None, None)
    results = []
    targets = common.csv_words(options.targets)
    for mode in common.csv_words(options.modes):
        servers = {}
        try:
            for target in targets:
                servers[target] = common.Server(target, mode, workdir).start()
            for deflate in common.csv_ints(options.deflate):
                for browsers in common.csv_ints(options.browsers):
                    for pace in paces:
                        for target in targets:
                            r = measure(servers[target], workdir, browsers, deflate, pace, schedule, options)
                            r.update(mode=mode, target=target, deflate=deflate, browsers=browsers, pace=pace)
                            if pace == "claude":
                                r["x_claude"] = common.ratio(r.get("seconds"), emit["emit_seconds"])
                            results.append(r)
                            print(_line(r), flush=True)
        finally:
            for server in servers.values():
                server.stop()
    print()
    report(results, emit)
    summary = {k: v for k, v in (emit or {}).items() if k != "offsets"}
    common.save("coalesce", {"options": vars(options), "claude": summary, "results": results})
    return results, emit


def _line(r):
    return (
        f"  {r['mode']:8} {r['target']:10} deflate={r['deflate']} browsers={r['browsers']:>3} "
        f"pace={r['pace']:6}: "
        f"{common.fmt(r.get('seconds'), 3)} s"
        + (f" ({common.fmt(r.get('x_claude'), 2)}x Claude)" if r.get("x_claude") else "")
        + f", {common.fmt(r.get('deltas_per_browser'))} deltas/s per browser in "
        f"{common.fmt(r.get('messages_per_answer'))} messages; "
        f"cpu server {common.fmt(r.get('server_cpu'), 2)}"
        f" machine {common.fmt(r.get('machine_cpu'), 2)}" + ("" if r.get("complete") else "  INCOMPLETE")
    )


def report(results, emit):
    rows = []
    for r in results:
        verdict = ""
        if r["pace"] == "claude" and r["target"] != "bare" and r["browsers"] == 20:
            verdict = "met" if (r.get("x_claude") or 99) <= TARGET_RATIO else "MISSED"
        if r["pace"] == "max" and r["target"] != "bare":
            verdict = "> Node" if (r.get("deltas_per_browser") or 0) > common.NODE_SOCKETIO_MSGS else "< Node"
        rows.append(
            [
                r["mode"],
                r["target"],
                "on" if r["deflate"] else "off",
                r["browsers"],
                r["pace"],
                common.fmt(r.get("seconds"), 3),
                common.fmt(r.get("x_claude"), 2),
                common.fmt(r.get("messages_per_answer")),
                common.fmt(r.get("deltas_per_browser")),
                common.fmt(r.get("chars_per_browser")),
                common.fmt(r.get("deltas_total")),
                "yes" if r.get("complete") else "NO",
                verdict,
            ]
        )
    title = "A 20,000-delta answer (targets: <= 1.2x Claude Code at 20 browsers; deltas/s > Node's 47,000)"
    if emit:
        pace = common.fmt(emit["deltas_per_second"])
        title += f"\nClaude Code alone: {emit['emit_seconds']:.3f} s ({pace} deltas/s)"
    common.table(
        [
            "mode",
            "relay",
            "deflate",
            "browsers",
            "pace",
            "seconds",
            "x Claude",
            "msgs",
            "deltas/s/browser",
            "chars/s/browser",
            "deltas/s total",
            "whole",
            "target",
        ],
        rows,
        title=title,
    )


if __name__ == "__main__":
    main()
