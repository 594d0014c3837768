"""Shared by the benchmark scripts: child processes, servers, login, /proc readings, tables, results."""

import atexit
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import queue
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RESULTS = os.path.join(BENCH, "results")
PY = sys.executable
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
MODES = ("eventlet", "gevent")
# Reference figures from the issue (measured earlier on this kind of machine, not re-run here).
NODE_SOCKETIO_MSGS = 47_000
CLAUDE_DELTAS_PER_S = 20_000


def raise_fd_limit(want=20_000):
    """Lift the soft limit on open files (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, want), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# -- child processes -------------------------------------------------------------------


class Child:
    """A child process that talks in lines: `TAG {json}` on stdout, commands on stdin.

    Stderr goes to a log file; the process is ended by its own PID only.
    """

    def __init__(self, args, log_path, env=None, name=None, cwd=None):
        self.name = name or os.path.basename(args[1] if len(args) > 1 else args[0])
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            cwd=cwd or ROOT,
            env=env or os.environ.copy(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self.pid = self.proc.pid
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def expect(self, tag, timeout):
        """Wait for the next line starting with `tag`; returns the JSON after it (or {})."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no {tag} within {timeout:.0f} s; see {self.log_path}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.name} exited ({self.proc.poll()}) before {tag}: {self.tail()}")
            if line.startswith(tag):
                rest = line[len(tag) :].strip()
                if rest.startswith(("{", "[")):
                    return json.loads(rest)
                return {"text": rest}

    def send(self, line):
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def tail(self, chars=2000):
        self._log.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as file:
            return file.read()[-chars:]

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        self._log.close()


class Workdir:
    """A temporary folder for one benchmark run: databases, logs, agent state."""

    def __init__(self, prefix="tether-bench-"):
        self.path = tempfile.mkdtemp(prefix=prefix)
        if not os.environ.get("BENCH_KEEP"):  # BENCH_KEEP=1 keeps logs and databases
            atexit.register(shutil.rmtree, self.path, True)

    def file(self, name):
        return os.path.join(self.path, name)


# -- servers ---------------------------------------------------------------------------------


class Server:
    """A Tether server (bench/tether_server.py) or a bare relay (bench/bare_relay.py)."""

    def __init__(self, kind, mode, workdir, **options):
        self.kind = kind  # bare | tether | tether-wal | tether-nostore
        self.mode = mode
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.seed = {}
        self.cookie = None
        args = [PY]
        if kind == "bare":
            args += [os.path.join(BENCH, "bare_relay.py"), "--mode", mode, "--port", str(self.port)]
            if options.get("max_size"):
                args += ["--max-size", str(options["max_size"])]
            env = os.environ.copy()
        else:
            db_dir = options.get("db_dir") or os.environ.get("BENCH_DB_DIR") or workdir.path
            db = os.path.join(db_dir, f"tether-bench-{self.port}.sqlite3")
            self.db_path = db
            project_dir = workdir.file("project")
            os.makedirs(project_dir, exist_ok=True)
            args += [os.path.join(BENCH, "tether_server.py"), "--seed", project_dir]
            if options.get("max_size"):
                args += ["--max-size", str(options["max_size"])]
            if options.get("agent_rate"):
                args += ["--agent-rate", str(options["agent_rate"])]
            if options.get("history"):
                args += ["--history", options["history"]]
            if kind == "tether-nostore":
                args.append("--no-storage")
            if kind == "tether-wal":
                args.append("--sqlite-wal")
            if options.get("profile"):
                args += ["--profile", options["profile"]]
            env = os.environ.copy()
            env.update(
                TETHER_ASYNC_MODE=mode,
                TETHER_HOST=HOST,
                TETHER_PORT=str(self.port),
                TETHER_SECRET_KEY="bench-secret",
                TETHER_DATABASE_URL=f"sqlite:///{db}",
                TETHER_INSTANCE_PATH=workdir.file("instance"),
            )
        self.child = Child(args, workdir.file(f"server-{kind}-{mode}-{self.port}.log"), env, f"{kind}-server")
        self.pid = self.child.pid

    def start(self, timeout=60):
        try:
            if self.kind != "bare":
                self.seed = self.child.expect("SEED", timeout)
            self.child.expect("SERVING", timeout)
            _wait_listening(self.port, timeout)
            if self.kind != "bare":
                self.cookie = login(self.url, self.seed["username"], self.seed["password"])
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        self.child.stop()

    def rss_kb(self):
        return rss_kb(self.pid)

    def cpu_seconds(self):
        return cpu_seconds(self.pid)


def _wait_listening(port, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def login(url, username, password):
    """Log in through the form like a browser; returns the session cookie's value."""
    import requests

    http = requests.Session()
    page = http.get(url + "/login", timeout=10)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    reply = http.post(
        url + "/login",
        data={"username": username, "password": password, "csrf_token": match.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    if reply.status_code != 302:
        raise RuntimeError(f"login failed: {reply.status_code}")
    return http.cookies["session"]


# -- /proc ------------------------------------------------------------------------------------


def rss_kb(pid):
    with open(f"/proc/{pid}/statm") as file:
        return int(file.read().split()[1]) * PAGE_KB


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu_seconds():
    """CPU seconds spent by every process on the machine so far (all cores)."""
    with open("/proc/stat") as file:
        fields = [int(x) for x in file.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLK_TCK


def loadavg():
    with open("/proc/loadavg") as file:
        return float(file.read().split()[0])


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- numbers and tables ------------------------------------------------------------------------


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    return None if not a or not b else a / b


def fmt(value, digits=0):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def table(headers, rows, title=None):
    """Print an aligned text table; returns it as a string too."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    if title:
        lines.append(title)
    for n, row in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if n else c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def conditions():
    """The machine and software a run happened on."""
    versions = {}
    for name in (
        "python-socketio",
        "python-engineio",
        "Flask-SocketIO",
        "eventlet",
        "gevent",
        "simple-websocket",
        "gevent-websocket",
        "wsproto",
        "websocket-client",
        "SQLAlchemy",
        "claude-agent-sdk",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    with open("/proc/meminfo") as file:
        mem_kb = int(file.readline().split()[1])
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as file:
        cpu = next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), "")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": versions,
        "when": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def save(name, data):
    """Write results to bench/results/NAME-<time>.json and NAME-latest.json; returns the path."""
    os.makedirs(RESULTS, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(RESULTS, f"{name}-{stamp}.json")
    body = json.dumps({"conditions": conditions(), **data}, indent=2, default=str)
    for target in (path, os.path.join(RESULTS, f"{name}-latest.json")):
        with open(target, "w") as file:
            file.write(body)
    print(f"\nresults: {os.path.relpath(path, ROOT)}", flush=True)
    return path


def csv_ints(text):
    return [int(x) for x in text.split(",") if x.strip()]


def csv_words(text):
    return [x.strip() for x in text.split(",") if x.strip()]


def read_py_spy_samples(path):
    """py-spy's raw format: one `frame;frame;... count` line per distinct stack, root first."""
    stacks = []
    with open(path) as file:
        for line in file:
            stack, _, count = line.rstrip().rpartition(" ")
            if stack:
                stacks.append((stack.split(";"), int(count)))
    return stacks
