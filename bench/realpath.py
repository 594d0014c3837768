"""The agent's real path against Claude Code alone, side by side in one run.

    .venv/bin/python bench/realpath.py [--quick] [--modes gevent] [--browsers 1,20]
        [--latency-browsers 1,20,100] [--deltas 20000] [--rate 200] [--duration 4]
        [--repeat 3] [--deflate 1] [--via sdk] [--skip answer|latency] [--trace]
        [--agents current,before=DIR] [--profile [--profile-gil] [--profile-turns 3]]

Everything real: the stand-in model in a process of its own (bench/standin_timed.py,
which says when it starts writing each answer); the Claude Code CLI bundled with
claude-agent-sdk; the agent as users run it (`python -m agent_client`: its runner,
Outbox and python-socketio client); a Tether server (bench/tether_server.py, as
`python wsgi.py` runs); N browsers (bench/browsers.py, offering permessage-deflate
like Chromium unless --deflate 0). The agent's session is warmed by a first turn,
so every measured turn is a follow-up on a live Claude Code client.

"Claude Code alone" (bench/claude_alone.py) is the same warm follow-up through
claude-agent-sdk in a process of its own, against the same stand-in: what the SDK
client receives, with no agent, server or browser after it.

Two measurements. Every real-path trial comes right after a Claude Code alone trial
and is compared with that one (a ratio, or a difference), so that the load of the
moment hits both alike; with several agents (--agents, for a before/after) their
order flips every round. Figures are medians over the rounds.

  answer   `deltas: N` (20,000 deltas as fast as Claude Code emits them): from the
           model starting the text to the last browser holding the whole answer
           (checked word for word), against the model's start to the SDK client's
           last delta. Target: <= 1.2x at 20 browsers.
  latency  `paced: N RATE` (the stand-in stamps each delta with the wall-clock time
           it writes it): stamp to each browser's receipt against stamp to the SDK
           client's receipt, p50 and p99. Target: p50 within 5 ms and p99 within
           10 ms of Claude Code alone's, at every browser count.

--trace runs the agent through bench/agent_traced.py, which notes where in the agent
each stamped delta was (handed over by the runner, sent by the Outbox, written to the
socket, acknowledged). --agents runs other checkouts' agents side by side, e.g.
`before=DIR` with DIR an unpacked `git archive REV agent_client protocol
requirements.txt`. --profile then samples each agent with py-spy during
--profile-turns more answers at the largest browser count and prints where its time
goes (--profile-gil: only the thread holding the interpreter lock).
"""

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402

TARGET_RATIO = 1.2
TARGET_P50_MS = 5.0
TARGET_P99_MS = 10.0
WARM_PROMPT = "say: warming the session up"
TRACE_POINTS = ("received", "sent", "written", "acked")  # bench/agent_traced.py

# Where the agent's samples fall, by a frame that appears in their stacks.
AGENT_STEPS = {
    "SDK: reading Claude Code's stdout": "._read_messages_impl (claude_agent_sdk/",
    "SDK: routing messages (anyio streams)": "Query._read_messages (claude_agent_sdk/",
    "SDK: parsing messages": "parse_message (claude_agent_sdk/",
    "runner: the turn's message loop": "_Session._pump (agent_client/claude_runner.py",
    "runner -> Outbox.text (worker thread)": "Outbox.text (agent_client/outbox.py",
    "Outbox: sender thread": "Outbox._pump (agent_client/outbox.py",
    "Outbox: sealing chunks": "Outbox._seal (agent_client/outbox.py",
    "Outbox: writing the state file": "Outbox._persist (agent_client/outbox.py",
    "socketio: emit": "Client.emit (socketio/client.py",
    "engineio: write loop": "Client._write_loop (engineio/client.py",
    "engineio: read loop": "Client._read_loop_websocket (engineio/client.py",
    "socketio: a thread per incoming message (acks)": "Client._handle_eio_message (socketio/client.py",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--modes", default="gevent")
    parser.add_argument("--browsers", default="1,20", help="browser counts for the answer")
    parser.add_argument("--latency-browsers", default="1,20,100")
    parser.add_argument("--deltas", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0, help="latency: deltas per second")
    parser.add_argument("--duration", type=float, default=4.0, help="latency: seconds of deltas per trial")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of alternating trials")
    parser.add_argument("--deflate", type=int, default=1, help="1: browsers offer permessage-deflate")
    parser.add_argument("--via", choices=("sdk", "runner"), default="sdk", help="Claude Code alone through")
    parser.add_argument(
        "--agents",
        default="current",
        help="agents to measure side by side: current (this checkout) and LABEL=DIR (another checkout)",
    )
    parser.add_argument("--skip", default="", help="answer,latency: leave one out")
    parser.add_argument("--trace", action="store_true", help="time the stamped deltas inside the agent too")
    parser.add_argument("--profile", action="store_true", help="py-spy the agent during extra answers")
    parser.add_argument("--profile-turns", type=int, default=3)
    parser.add_argument("--profile-gil", action="store_true", help="sample only the thread holding the GIL")
    parser.add_argument("--profile-out", default=os.path.join(common.RESULTS, "profile-agent.txt"))
    return parser.parse_args(argv)


class Baseline:
    """The stand-in model and Claude Code alone, warm; shared by every agent under test."""

    def __init__(self, mode, workdir, options):
        self.mode = mode
        self.workdir = workdir
        self.options = options
        self.model = self.alone = None
        self.url = None

    def start(self):
        w = self.workdir
        self.model = common.Child([common.PY, _bench("standin_timed.py")], w.file("model.log"), name="model")
        self.url = self.model.expect("LISTENING", 30)["url"]
        alone = [common.PY, _bench("claude_alone.py"), "--standin", self.url, "--via", self.options.via]
        alone += ["--workdir", w.file(f"alone-{self.mode}")]
        self.alone = common.Child(alone, w.file(f"alone-{self.mode}.log"), name="claude-alone")
        return self

    def ready(self):
        self.alone.expect("READY", 180)

    def stop(self):
        for child in (self.alone, self.model):
            if child is not None:
                child.send("EXIT")
                child.stop()

    def alone_turn(self, prompt, deltas):
        before = _cpu(self.alone.pid)
        self.alone.send("RUN " + json.dumps({"prompt": prompt}))
        result = self.alone.expect("RESULT", 300)
        result["cpu"] = _cpu_since(before, _cpu(self.alone.pid))
        result["model"] = self.model_stream(deltas)
        return result

    def model_stream(self, deltas):
        """The stand-in's record of the answer with `deltas` deltas (side requests skipped)."""
        while True:
            stream = self.model.expect("STREAM", 60)
            if stream["deltas"] == deltas:
                return stream


class RealPath:
    """A Tether server and one agent (this checkout's, or another's for a before/after), warm."""

    def __init__(self, label, tree, baseline):
        self.label = label
        self.tree = tree  # where agent_client comes from
        self.baseline = baseline
        self.mode = baseline.mode
        self.workdir = baseline.workdir
        self.options = baseline.options
        self.server = self.agent = None
        self.session_id = None
        self.last_seq = 0

    def start(self):
        self.server = common.Server("tether", self.mode, self.workdir).start()
        self.agent = self._start_agent()
        return self

    def warm(self):
        result = self._browsers(1, WARM_PROMPT, "text", new_session=True)
        self.session_id, self.last_seq = result["sessionId"], result["last_seq"]

    def _start_agent(self):
        from bench import followup

        name = f"{self.label}-{self.mode}"
        env = os.environ.copy()
        env.update(followup.claude_env(self.baseline.url, self.workdir.file(f"agent-claude-{name}")))
        env["PYTHONPATH"] = self.tree
        entry = [_bench("agent_traced.py")] if self.options.trace else ["-m", "agent_client"]
        args = [common.PY, *entry, "--server", self.server.url]
        args += ["--token", self.server.seed["token"], "--name", f"bench-{self.label}"]
        args += [
            "--root",
            self.workdir.file("project"),
            "--state-dir",
            self.workdir.file(f"agent-state-{name}"),
        ]
        return common.Child(args, self.workdir.file(f"agent-{name}.log"), env, name="agent", cwd=self.tree)

    def stop(self):
        if self.agent is not None:
            self.agent.stop()
        if self.server is not None:
            self.server.stop()

    def turn(self, prompt, deltas, browsers, kind):
        """A follow-up to `browsers` browsers; `kind` is text (check the words) or latency.

        CPU is read from GO (the first browser sends the prompt) to the browsers' RESULT.
        """
        readings = {}

        def at_go():
            readings["before"] = _cpu(self.agent.pid, self.server)

        result = self._browsers(browsers, prompt, kind, deltas=deltas, on_ready=at_go)
        result["cpu"] = _cpu_since(readings["before"], _cpu(self.agent.pid, self.server))
        result["model"] = self.baseline.model_stream(deltas)
        if self.options.trace:
            self.agent.send("TRACE")
            result["trace"] = self.agent.expect("TRACE", 30)
        return result

    def _browsers(self, count, prompt, kind, deltas=0, new_session=False, on_ready=None):
        args = [common.PY, _bench("browsers.py"), "--port", str(self.server.port), "--target", "tether"]
        args += ["--browsers", str(count), "--mode", kind, "--deflate", str(self.options.deflate)]
        args += ["--cookie", self.server.cookie, "--project", self.server.seed["project_id"]]
        args += ["--command", prompt, "--stamps", "model", "--timeout", "300"]
        if kind == "text" and deltas:
            args += ["--deltas", str(deltas)]
        if not new_session:
            args += ["--session", self.session_id, "--after-seq", str(self.last_seq), "--go"]
        log = self.workdir.file(f"browsers-{self.label}-{self.mode}.log")
        child = common.Child(args, log, name="browsers")
        try:
            child.expect("READY", 120)
            if on_ready is not None:
                on_ready()
            child.send("GO")
            result = child.expect("RESULT", 400)
        finally:
            child.stop()
        if result.get("last_seq"):
            self.last_seq = max(self.last_seq, result["last_seq"])
        return result


def _bench(name):
    return os.path.join(common.BENCH, name)


def _children(pid):
    """Pids of the direct children of pid (Claude Code runs as one, exec-ed by the launcher)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def _cpu(pid, server=None):
    """CPU seconds so far of a Claude Code client (pid) and its Claude Code, the server, the machine."""
    return {
        "at": time.monotonic(),
        "client": common.cpu_seconds(pid),
        "claude": sum(_cpu_or_zero(kid) for kid in _children(pid)),
        "server": server.cpu_seconds() if server is not None else 0.0,
        "machine": common.machine_cpu_seconds(),
        "loadavg": common.loadavg(),
    }


def _cpu_or_zero(pid):
    try:
        return common.cpu_seconds(pid)
    except OSError:
        return 0.0


def _cpu_since(before, after):
    """Cores used between two readings: by the client process, its Claude Code, the server, the machine."""
    wall = after["at"] - before["at"]
    out = {
        "wall": wall,
        "loadavg_before": before["loadavg"],
        "client_seconds": after["client"] - before["client"],
    }
    out["claude_seconds"] = after["claude"] - before["claude"]
    out["server_seconds"] = after["server"] - before["server"]
    for key in ("client", "claude", "server", "machine"):
        out[key] = (after[key] - before[key]) / wall if wall > 0 else None
    return out


# -- the two measurements ---------------------------------------------------------------------------


def answer_rows(baseline, paths, options, round_):
    """Each real-path trial right after a Claude Code alone trial: the ratio comes from that pair."""
    prompt = f"deltas: {options.deltas}"
    rows = []
    for browsers in common.csv_ints(options.browsers):
        for path in _in_turn(paths, round_):
            alone = baseline.alone_turn(prompt, options.deltas)
            alone_s = (alone["t_last"] - alone["model"]["t0"]) / 1e9
            rows.append(
                {
                    "measure": "answer",
                    "path": "alone",
                    "browsers": 0,
                    "round": round_,
                    "seconds": alone_s,
                    "first_to_last": (alone["t_last"] - alone["t_first"]) / 1e9,
                    "model_write_seconds": (alone["model"]["t1"] - alone["model"]["t0"]) / 1e9,
                    "complete": alone["deltas"] == options.deltas,
                    **_cores(alone),
                }
            )
            r = path.turn(prompt, options.deltas, browsers, "text")
            rows.append({"path": path.label, **_real_answer(r, browsers, round_, alone_s)})
    return rows


def _in_turn(paths, round_):
    """The agents in turn: their order flips every round, so neither always goes first."""
    return paths if round_ % 2 == 0 else paths[::-1]


def _real_answer(r, browsers, round_, alone_s):
    done = [b for b in r["browsers"] if b["done"] and b["t_last"]]
    t0 = r["model"]["t0"]
    seconds = (max(b["t_last"] for b in done) - t0) / 1e9 if done else None
    first = min((b["t_first"] for b in done), default=None)
    return {
        "measure": "answer",
        "browsers": browsers,
        "round": round_,
        "seconds": seconds,
        "x_alone": common.ratio(seconds, alone_s),
        "first_to_last": (max(b["t_last"] for b in done) - first) / 1e9 if done else None,
        "model_write_seconds": (r["model"]["t1"] - t0) / 1e9,
        "messages": common.median([b["count"] for b in r["browsers"]]),
        # --trace: when the agent's runner had handed over the last delta
        "agent_last_seconds": _agent_last(r, t0),
        "complete": len(done) == browsers and bool(r.get("text_ok")) and bool(r.get("seqs_ok")),
        "browsers_cpu_seconds": r.get("client_cpu_seconds"),
        **_cores(r),
    }


def latency_rows(baseline, paths, options, round_):
    """As answer_rows: each real-path trial paired with a Claude Code alone trial just before it."""
    count = int(options.rate * options.duration)
    prompt = f"paced: {count} {options.rate:g}"
    rows = []
    for browsers in common.csv_ints(options.latency_browsers):
        for path in _in_turn(paths, round_):
            alone = baseline.alone_turn(prompt, count)
            base = alone.get("latency_ms") or {}
            rows.append(
                {
                    "measure": "latency",
                    "path": "alone",
                    "browsers": 0,
                    "round": round_,
                    **base,
                    **_cores(alone),
                }
            )
            r = path.turn(prompt, count, browsers, "latency")
            lat = r.get("latency_ms") or {}
            rows.append(
                {
                    "measure": "latency",
                    "path": path.label,
                    "browsers": browsers,
                    "round": round_,
                    **lat,
                    "expected": count * browsers,
                    "messages": common.median([b["count"] for b in r["browsers"]]),
                    "p50_over_alone": _minus(lat.get("p50"), base.get("p50")),
                    "p99_over_alone": _minus(lat.get("p99"), base.get("p99")),
                    "complete": lat.get("n") == count * browsers and bool(r.get("seqs_ok")),
                    **_cores(r),
                    **_trace(r),
                }
            )
    return rows


def _agent_last(r, t0):
    deltas = (r.get("trace") or {}).get("deltas") or {}
    return (deltas["t_last"] - t0) / 1e9 if deltas.get("t_last") else None


def _trace(r):
    """--trace: ms from the stamp to where the agent had each delta (bench/agent_traced.py)."""
    trace = r.get("trace") or {}
    return {
        f"{point}_{p}": trace[point].get(p)
        for point in TRACE_POINTS
        if point in trace
        for p in ("p50", "p99")
    }


def _cores(r):
    """Cores used during the turn: the agent (or Claude Code alone's client) and its Claude Code CLI, ..."""
    cpu = r["cpu"]
    return {
        "client_cpu": cpu["client"],
        "client_cpu_seconds": cpu["client_seconds"],
        "claude_cpu": cpu["claude"],
        "claude_cpu_seconds": cpu["claude_seconds"],
        "server_cpu": cpu["server"],
        "server_cpu_seconds": cpu["server_seconds"],
        "machine_cpu": cpu["machine"],
        "loadavg_before": cpu["loadavg_before"],
    }


def _minus(a, b):
    return None if a is None or b is None else a - b


# -- profile ------------------------------------------------------------------------------------------


def profile(path, options):
    """py-spy the agent process during a few answers at the largest browser count."""
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(common.PY), "py-spy")
    if not os.path.exists(spy):
        print("py-spy not found: no profile", flush=True)
        return None
    raw = path.workdir.file(f"agent-samples-{path.label}.txt")
    record = [spy, "record", "--pid", str(path.agent.pid), "--format", "raw", "--output", raw, "--threads"]
    record += ["--rate", "200"] + (["--gil"] if options.profile_gil else [])
    browsers = max(common.csv_ints(options.browsers))
    prompt = f"deltas: {options.deltas}"
    sampler = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = []
    try:
        for _ in range(options.profile_turns):
            r = path.turn(prompt, options.deltas, browsers, "text")
            seconds.append(_real_answer(r, browsers, -1, None)["seconds"])
    finally:
        sampler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            sampler.wait(60)
        except subprocess.TimeoutExpired:
            sampler.kill()
    if not os.path.exists(raw):
        print("py-spy wrote nothing (is ptrace allowed?)", flush=True)
        return None
    stacks = common.read_py_spy_samples(raw)
    text = f"agent: {path.label}\n" + profile_summary(stacks, options, browsers, seconds)
    out = options.profile_out.replace(".txt", f"-{path.label}.txt")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    shutil.copy(raw, os.path.splitext(out)[0] + ".raw")
    with open(out, "w") as file:
        file.write(text)
    print(text + f"(written to {os.path.relpath(out, common.ROOT)})", flush=True)
    return text


def profile_summary(stacks, options, browsers, seconds):
    total = sum(count for _, count in stacks) or 1
    threads = collections.Counter()
    own = collections.Counter()
    for frames, count in stacks:
        threads[frames[0]] += count
        own[frames[-1]] += count
    gil = "the thread holding the GIL" if options.profile_gil else "every active thread"
    lines = [
        f"agent process, {options.profile_turns} answers of {options.deltas:,} deltas to {browsers} browsers "
        f"({', '.join(f'{s:.2f}' for s in seconds if s)} s); {total} samples at 200/s of {gil}",
        "",
        "samples per thread:",
    ]
    lines += [f"  {100 * c / total:5.1f} %  {name}" for name, c in threads.most_common(12)]
    lines += ["", "share of samples under each step:"]
    for step, marker in AGENT_STEPS.items():
        under = sum(count for frames, count in stacks if any(marker in frame for frame in frames))
        lines.append(f"  {100 * under / total:5.1f} %  {step}")
    lines += ["", "top functions by own samples:"]
    lines += [f"  {100 * c / total:5.1f} %  {frame}" for frame, c in own.most_common(30)]
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------------------------


def main(argv=None):
    options = parse_args(argv)
    if options.quick:
        options.repeat, options.duration, options.profile_turns = 2, 2.0, 2
    common.raise_fd_limit()
    workdir = common.Workdir()
    skip = set(common.csv_words(options.skip))
    agents = parse_agents(options.agents)
    results = []
    profiles = {}
    for mode in common.csv_words(options.modes):
        baseline = Baseline(mode, workdir, options)
        paths = [RealPath(label, tree, baseline) for label, tree in agents]
        try:
            baseline.start()
            for path in paths:
                path.start()
            baseline.ready()
            for path in paths:
                path.warm()
            for round_ in range(options.repeat):
                rows = [] if "answer" in skip else answer_rows(baseline, paths, options, round_)
                rows += [] if "latency" in skip else latency_rows(baseline, paths, options, round_)
                for row in rows:
                    row["mode"] = mode
                    print(_line(row), flush=True)
                results += rows
            if options.profile:
                for path in paths:
                    profiles[f"{mode}-{path.label}"] = profile(path, options)
        finally:
            for path in paths:
                path.stop()
            baseline.stop()
    print()
    data = {"options": vars(options), "results": results, "profiles": profiles}
    common.save("realpath", data)  # first: a failing report must not lose the trials
    data["summary"] = report(results, options)
    common.save("realpath", data)
    return data["summary"]


def parse_agents(text):
    """`current` (this checkout) and `LABEL=DIR` (a checkout whose agent_client runs: a before/after)."""
    agents = []
    for word in common.csv_words(text):
        label, _, tree = word.partition("=")
        agents.append((label, os.path.abspath(tree) if tree else common.ROOT))
    return agents


def _line(r):
    where = "alone" if r["path"] == "alone" else f"{r['path']}, {r['browsers']:>3} browsers"
    head = f"  {r['mode']} round {r['round']} {r['measure']:7} {where:18}: "
    if r["measure"] == "answer":
        text = f"{common.fmt(r.get('seconds'), 3)} s"
        if r.get("agent_last_seconds"):
            text += f" (the agent had the last delta at {common.fmt(r['agent_last_seconds'], 3)} s)"
        if r.get("x_alone"):
            text += f" ({common.fmt(r['x_alone'], 2)}x alone) in {common.fmt(r.get('messages'))} messages"
    else:
        text = f"p50 {common.fmt(r.get('p50'), 1)} ms, p99 {common.fmt(r.get('p99'), 1)} ms"
        if r.get("messages"):
            text += f" in {common.fmt(r['messages'])} messages"
        if r["path"] != "alone":
            text += (
                f" (+{common.fmt(r.get('p50_over_alone'), 1)} / +{common.fmt(r.get('p99_over_alone'), 1)})"
            )
    text += (
        f"; cores: {'sdk client' if r['path'] == 'alone' else 'agent'} {common.fmt(r.get('client_cpu'), 2)}"
        f" claude {common.fmt(r.get('claude_cpu'), 2)} server {common.fmt(r.get('server_cpu'), 2)}"
        f" machine {common.fmt(r.get('machine_cpu'), 2)}"
    )
    return head + text + ("" if r.get("complete", True) else "  INCOMPLETE")


MEDIANS = (
    "seconds",
    "agent_last_seconds",
    "x_alone",
    "first_to_last",
    "messages",
    "p50",
    "p90",
    "p99",
    "max",
    "p50_over_alone",
    "p99_over_alone",
    "client_cpu",
    "client_cpu_seconds",
    "claude_cpu",
    "claude_cpu_seconds",
    "server_cpu",
    "server_cpu_seconds",
    "browsers_cpu_seconds",
    "machine_cpu",
    *(f"{point}_{p}" for point in TRACE_POINTS for p in ("p50", "p99")),
)


def summarise(results, options):
    """Medians over the rounds, per mode, measure and browser count; with the target verdicts."""
    groups = collections.defaultdict(list)
    for r in results:
        groups[(r["mode"], r["measure"], r["path"], r["browsers"])].append(r)
    out = []
    for (mode, measure, path, browsers), rows in sorted(groups.items()):
        row = {"mode": mode, "measure": measure, "path": path, "browsers": browsers, "trials": len(rows)}
        for key in MEDIANS:
            row[key] = common.median([r.get(key) for r in rows])
        row["complete"] = all(r.get("complete", True) for r in rows)
        row["met"] = _met(row, options)
        out.append(row)
    return out


def _met(row, options):
    if row["path"] == "alone":
        return None
    if row["measure"] == "answer":
        if row["browsers"] != 20:
            return None
        return bool(row["complete"] and row["x_alone"] and row["x_alone"] <= TARGET_RATIO)
    p50, p99 = row.get("p50_over_alone"), row.get("p99_over_alone")
    return bool(row["complete"] and p50 is not None and p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS)


def report(results, options):
    summary = summarise(results, options)
    deflate = "offered (Tether refuses it)" if options.deflate else "not offered"
    answers = [r for r in summary if r["measure"] == "answer"]
    if answers:
        common.table(
            [
                "mode",
                "path",
                "browsers",
                "trials",
                "seconds",
                "agent had all s",
                "x alone",
                "first->last s",
                "msgs",
                "client cpu s",
                "claude cpu s",
                "server cpu s",
                "browsers cpu s",
                "client cores",
                "claude cores",
                "server cores",
                "machine cores",
                "whole",
                "target",
            ],
            [
                [
                    *_row_start(r),
                    common.fmt(r["seconds"], 3),
                    common.fmt(r["agent_last_seconds"], 3),
                    common.fmt(r["x_alone"], 2),
                    common.fmt(r["first_to_last"], 3),
                    common.fmt(r["messages"]),
                    common.fmt(r["client_cpu_seconds"], 2),
                    common.fmt(r["claude_cpu_seconds"], 2),
                    common.fmt(r["server_cpu_seconds"], 2),
                    common.fmt(r["browsers_cpu_seconds"], 2),
                    *_row_end(r),
                ]
                for r in answers
            ],
            title=(
                f"A {options.deltas:,}-delta follow-up, from the model starting the text to the last holder "
                f"having all of it (medians over the trials; x alone: of each trial against the alone trial "
                f"just before it; deflate {deflate}; target <= {TARGET_RATIO}x alone at 20 browsers)"
            ),
        )
        print()
    latencies = [r for r in summary if r["measure"] == "latency"]
    if latencies:
        common.table(
            [
                "mode",
                "path",
                "browsers",
                "trials",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "p50 over alone",
                "p99 over alone",
                "msgs",
                "client cores",
                "claude cores",
                "server cores",
                "machine cores",
                "all stamps",
                "target",
            ],
            [
                [
                    *_row_start(r),
                    common.fmt(r["p50"], 1),
                    common.fmt(r["p90"], 1),
                    common.fmt(r["p99"], 1),
                    common.fmt(r["p50_over_alone"], 1),
                    common.fmt(r["p99_over_alone"], 1),
                    common.fmt(r["messages"]),
                    *_row_end(r),
                ]
                for r in latencies
            ],
            title=(
                f"From the model writing a delta to its holder, {options.rate:g} deltas/s for "
                f"{options.duration:g} s (medians over the trials of each trial's percentiles; over alone: "
                f"against the alone trial just before it; targets: p50 within "
                f"{TARGET_P50_MS:g} ms and p99 within {TARGET_P99_MS:g} ms of alone's)"
            ),
        )
        if options.trace:
            print()
            points = TRACE_POINTS
            common.table(
                [
                    "mode",
                    "path",
                    "browsers",
                    *(f"{point} p50 / p99" for point in points),
                    "browser p50 / p99",
                ],
                [
                    [
                        r["mode"],
                        r["path"],
                        r["browsers"],
                        *(
                            f"{common.fmt(r[f'{point}_p50'], 1)} / {common.fmt(r[f'{point}_p99'], 1)}"
                            for point in points
                        ),
                        f"{common.fmt(r['p50'], 1)} / {common.fmt(r['p99'], 1)}",
                    ]
                    for r in latencies
                    if r["path"] != "alone"
                ],
                title=(
                    "Where the latency accrues, ms after the model wrote the delta (bench/agent_traced.py): "
                    "the runner hands it to the agent's client (received), the Outbox sends its chunk "
                    "(sent), the socket writer puts it on the wire (written), the server's ack of it "
                    "arrives (acked), a browser holds it"
                ),
            )
    print(
        "agent had all s (--trace): from the model's start to the runner handing the agent's client the "
        "last delta. cpu s: CPU seconds from the prompt to the end; cores: the same / wall time. "
        "client = the agent process (real path) or "
        "the SDK client's process (alone); claude = its Claude Code CLI; machine = every process on the "
        f"machine ({os.cpu_count()} cores: {os.cpu_count()}.0 is saturated)",
        flush=True,
    )
    return summary


def _row_start(r):
    """The cells both summary tables start with: mode, path, browsers, trials."""
    path = "Claude Code alone" if r["path"] == "alone" else f"real path ({r['path']})"
    return [r["mode"], path, r["browsers"] or "-", r["trials"]]


def _row_end(r):
    """The cells both end with: cores busy by process, whether every holder got it all, the verdict."""
    cores = [common.fmt(r[key], 2) for key in ("client_cpu", "claude_cpu", "server_cpu", "machine_cpu")]
    return [*cores, "yes" if r["complete"] else "NO", _verdict(r["met"])]


def _verdict(met):
    return "" if met is None else ("met" if met else "MISSED")


if __name__ == "__main__":
    main()
