"""Claude Code itself, through the agent's SessionManager and the stand-in model.

    .venv/bin/python bench/followup.py [--quick] [--live 5] [--cold 3] [--deltas 20000]

Two things, with the real bundled Claude Code CLI talking to
agent_client.standin.StandInModel on loopback (so the "model" is instant):

1. A follow-up turn on a live SDK client (the session's Claude Code process is kept
   between turns) against a cold start: a new CLI process, either resuming the
   session (what happens after the idle timeout or an agent restart) or new.
   Measured from SessionManager.run() to the first text delta and to the finish.
2. How fast Claude Code alone emits a `deltas: N` answer on a live client: the
   time from its first text delta to its last, and the offsets of every delta
   (coalesce.py replays them to the relay, so the relay gets Claude Code's pace).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--live", type=int, default=5, help="follow-up turns on the live client")
    parser.add_argument("--cold", type=int, default=3, help="cold starts of each kind")
    parser.add_argument("--deltas", type=int, default=20_000)
    parser.add_argument("--emit-samples", type=int, default=3)
    return parser.parse_args(argv)


def claude_env(url, config_dir):
    return {
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "tether-bench-key",
        "CLAUDE_CONFIG_DIR": config_dir,
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }


class TimingSink:
    """A Sink that keeps the time of every delta and of the finish, per command."""

    def __init__(self):
        self.cond = threading.Condition()
        self.deltas = {}  # command id -> [monotonic times]
        self.claude_ids = {}
        self.finished = {}

    def text(self, session_id, command_id, text):
        now = time.monotonic()
        with self.cond:
            self.deltas.setdefault(command_id, []).append(now)

    def event(self, session_id, command_id, event):
        if event.get("type") == "system" and event.get("subtype") == "init":
            with self.cond:
                self.claude_ids[session_id] = event.get("session_id")

    def permission(self, session_id, command_id, request_id, tool_name, tool_input):
        pass

    def finish(self, session_id, command_id, error):
        with self.cond:
            self.finished[command_id] = (time.monotonic(), error)
            self.cond.notify_all()

    def wait(self, command_id, timeout=120):
        deadline = time.monotonic() + timeout
        with self.cond:
            while command_id not in self.finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"command {command_id} did not finish")
                self.cond.wait(remaining)
            return self.finished[command_id]


class Claude:
    """A SessionManager against the stand-in, and a way to time one turn."""

    def __init__(self, workdir):
        from agent_client.claude_runner import SessionManager
        from agent_client.standin import StandInModel

        self.workdir = workdir
        self.model = StandInModel()
        url = self.model.start()
        self.sink = TimingSink()
        env = claude_env(url, os.path.join(workdir, "claude-config"))
        self.manager = SessionManager(self.sink, env=env, idle_timeout=600)
        self._n = 0

    def turn(self, session_id, prompt, resume=None):
        """Run one prompt; returns (seconds to first delta, seconds to finish, delta times)."""
        from agent_client.claude_runner import RunRequest

        self._n += 1
        command_id = f"c{self._n}"
        request = RunRequest(session_id, command_id, prompt, self.workdir, resume=resume)
        start = time.monotonic()
        self.manager.run(request)
        finished, error = self.sink.wait(command_id)
        if error:
            raise RuntimeError(f"Claude Code failed: {error}")
        deltas = self.sink.deltas.get(command_id, [])
        first = deltas[0] - start if deltas else None
        return first, finished - start, deltas

    def close(self):
        self.manager.close()
        self.model.stop()


def measure_turns(claude, live, cold):
    rows = {"cold_new": [], "live_followup": [], "cold_resume": []}
    first, total, _ = claude.turn("s-live", "say: first turn of the live session")
    rows["cold_new"].append((first, total))
    for _ in range(live):
        rows["live_followup"].append(claude.turn("s-live", "say: a follow-up answer")[:2])
    claude_id = claude.sink.claude_ids.get("s-live")
    for i in range(cold):
        # A new Tether session id means a new Claude Code process; resume= continues the
        # conversation: exactly what the agent does once the live client is gone.
        rows["cold_resume"].append(claude.turn(f"s-resume-{i}", "say: resumed", resume=claude_id)[:2])
        if i + 1 < cold:
            rows["cold_new"].append(claude.turn(f"s-new-{i}", "say: a new conversation")[:2])
    return rows


def measure_emit(claude, deltas, samples):
    """Claude Code's own pace for a `deltas: N` answer on a warm client."""
    runs = []
    for _ in range(samples):
        _, total, times = claude.turn("s-emit", f"deltas: {deltas}")
        if len(times) != deltas:
            raise RuntimeError(f"expected {deltas} deltas, got {len(times)}")
        runs.append({"emit_seconds": times[-1] - times[0], "turn_seconds": total, "times": times})
    runs.sort(key=lambda r: r["emit_seconds"])
    chosen = runs[len(runs) // 2]
    offsets = [t - chosen["times"][0] for t in chosen["times"]]
    return {
        "deltas": deltas,
        "emit_seconds": chosen["emit_seconds"],
        "emit_seconds_all": [r["emit_seconds"] for r in runs],
        "turn_seconds": chosen["turn_seconds"],
        "deltas_per_second": deltas / chosen["emit_seconds"],
        "offsets": offsets,
    }


def run(options, emit=True, turns=True):
    workdir = tempfile.mkdtemp(prefix="tether-bench-claude-")
    claude = Claude(workdir)
    out = {}
    try:
        if turns:
            out["turns"] = measure_turns(claude, options.live, options.cold)
        if emit:
            out["emit"] = measure_emit(claude, options.deltas, options.emit_samples)
    finally:
        claude.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def schedule_file(emit, path):
    with open(path, "w") as file:
        json.dump(emit["offsets"], file)
    return path


def report(out):
    rows = []
    for name, label in (
        ("live_followup", "follow-up, live client"),
        ("cold_resume", "cold start, resume"),
        ("cold_new", "cold start, new session"),
    ):
        samples = out.get("turns", {}).get(name, [])
        if samples:
            rows.append(
                [
                    label,
                    len(samples),
                    common.fmt(1000 * common.median([s[0] for s in samples])),
                    common.fmt(1000 * common.median([s[1] for s in samples])),
                ]
            )
    if rows:
        common.table(
            ["turn", "n", "first text ms (median)", "finish ms (median)"], rows, title="Claude Code turns"
        )
        live = common.median([s[1] for s in out["turns"]["live_followup"]])
        cold = common.median([s[1] for s in out["turns"]["cold_resume"]])
        print(f"a live follow-up takes {common.fmt(common.ratio(live, cold), 2)}x the time of a cold start")
    if "emit" in out:
        e = out["emit"]
        print(
            f"\nClaude Code alone: {e['deltas']:,} deltas in {e['emit_seconds']:.3f} s from first to last "
            f"({common.fmt(e['deltas_per_second'])} deltas/s; "
            f"samples {[round(x, 3) for x in e['emit_seconds_all']]})"
        )


def main(argv=None):
    options = parse_args(argv)
    if options.quick:
        options.live, options.cold, options.emit_samples = 3, 2, 1
    out = run(options)
    report(out)
    saved = dict(out)
    if "emit" in saved:
        saved["emit"] = {k: v for k, v in saved["emit"].items() if k != "offsets"}
    common.save("followup", {"options": vars(options), **saved})
    return out


if __name__ == "__main__":
    main()
