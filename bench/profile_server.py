"""Where the server's CPU goes per stored chunk: py-spy samples a Tether server during a paced stream.

    .venv/bin/python bench/profile_server.py [--mode gevent] [--rate 200] [--duration 10]
        [--browsers 1] [--burst] [--hz 100] [--out bench/results/profile.txt]

Starts a Tether server (as `python wsgi.py` runs, SQLite), a raw producer speaking
the /agent protocol and N browsers, and records the server with `py-spy record`
(pip install py-spy) for the stream's duration. Prints the functions where the
samples are (own time), and the share of samples under each of the hot path's
steps, so a change can be aimed and then checked with the same command.
"""

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, trial  # noqa: E402

# Steps of the hot path, by the functions (name and file) that appear in their stacks.
STEPS = {
    "event context (Flask-SocketIO's, or the app's for /agent)": (
        "SocketIO._handle_event (flask_socketio/__init__.py)",
        "GuardedNamespace._in_app_context (app/sockets/__init__.py)",
    ),
    "inbound wrapper (size, scrub)": (
        "inbound.<locals>.decorate.<locals>.handler (app/sockets/__init__.py)",
    ),
    "validation": ("load (protocol/schemas.py)",),
    "storing (writer batch)": ("write_chunks (app/storage.py)",),
    "delivery to browsers": ("SessionDelivery.live (app/delivery.py)",),
    "Engine.IO/WebSocket I/O": ("Socket._websocket_handler (engineio/socket.py)",),
}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", default="gevent")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--browsers", type=int, default=1)
    parser.add_argument("--burst", action="store_true", help="as fast as acknowledgements allow")
    parser.add_argument("--hz", type=int, default=100, help="py-spy's samples per second")
    parser.add_argument("--out", default=os.path.join(common.BENCH, "results", "profile-server.txt"))
    return parser.parse_args(argv)


def main(argv=None):
    options = parse_args(argv)
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        sys.exit("py-spy is needed: pip install py-spy")
    workdir = common.Workdir()
    # A burst outruns the agent's rate limit (1,000 chunks/s): lifted, as bench/fanout.py does.
    extra = {"agent_rate": 1_000_000} if options.burst else {}
    server = common.Server("tether", options.mode, workdir, **extra).start()
    raw = workdir.file("samples.txt")
    record = [spy, "record", "--pid", str(server.pid), "--format", "raw", "--output", raw, "--nonblocking"]
    record += ["--rate", str(options.hz)]
    record += ["--duration", str(int(options.duration + 2))]
    try:
        sampler = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if options.burst:
            producer = ["--mode", "burst", "--count", str(int(options.rate * options.duration))]
        else:
            producer = ["--mode", "paced", "--rate", str(options.rate), "--duration", str(options.duration)]
        reading = trial.run_stream(server, workdir, options.browsers, producer, ["--mode", "latency"])
        sampler.wait(60)
    finally:
        server.stop()
    stacks = common.read_py_spy_samples(raw)
    text = summary(stacks, options, reading)
    os.makedirs(os.path.dirname(options.out), exist_ok=True)
    shutil.copy(raw, os.path.splitext(options.out)[0] + ".raw")  # for a flame graph (e.g. speedscope)
    with open(options.out, "w") as file:
        file.write(text)
    print(text)
    print(f"(written to {options.out})")


def summary(stacks, options, reading):
    total = sum(count for _, count in stacks) or 1
    own = collections.Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
    stored = reading["producer"].get("count") or int(options.rate * options.duration)
    lines = [
        f"server CPU {reading['server_cpu_seconds']:.2f} s for about {stored} chunks to {options.browsers} "
        f"browser(s) ({options.mode}, {'burst' if options.burst else f'{options.rate:g}/s'}); "
        f"{total} samples",
        "",
        "share of samples under each step of the hot path:",
    ]
    for step, markers in STEPS.items():
        under = sum(count for frames, count in stacks if any(_no_line(frame) in markers for frame in frames))
        lines.append(f"  {100 * under / total:5.1f} %  {step}")
    lines += ["", "top functions by own samples:"]
    for frame, count in own.most_common(25):
        lines.append(f"  {100 * count / total:5.1f} %  {frame}")
    return "\n".join(lines) + "\n"


def _no_line(frame):
    """`name (file:line)` as `name (file)`: the steps are named by function and file."""
    return re.sub(r":\d+\)$", ")", frame)


if __name__ == "__main__":
    main()
