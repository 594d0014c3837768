"""Real processes for integration tests: the server, agents and logged-in web clients."""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import requests
import socketio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASYNC_MODE = os.environ.get("TETHER_ASYNC_MODE", "gevent")
WAIT = 30.0


FLASK = os.path.join(os.path.dirname(sys.executable), "flask")


def run_flask(database_url, instance, *args):
    """`flask --app wsgi ARGS` as a real process on the test database (no other TETHER_ setting)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TETHER_")}
    env.update(TETHER_DATABASE_URL=database_url, TETHER_INSTANCE_PATH=str(instance))
    return subprocess.run(
        [FLASK, "--app", "wsgi", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def flask_result(database_url, instance, *args):
    """The last line `flask --app wsgi ARGS` prints (its result's identifier); it must succeed."""
    done = run_flask(database_url, instance, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout=WAIT, message="condition"):
    """Poll `predicate` until it is true; fail the test with `message` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")


class Process:
    """A child process with its output in a log file, ended by PID."""

    def __init__(self, args, env, log_path):
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT
        )
        return self

    def send(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def kill(self):
        self.stop(signal.SIGKILL)

    def output(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as file:
            return file.read()


class ServerProcess(Process):
    """`python wsgi.py` on a free loopback port."""

    def __init__(self, database_url, workdir, port=None, async_mode=ASYNC_MODE, extra_env=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            TETHER_DATABASE_URL=database_url,
            TETHER_SECRET_KEY="integration-secret",
            TETHER_HOST="127.0.0.1",
            TETHER_PORT=str(self.port),
            TETHER_ASYNC_MODE=async_mode,
            TETHER_INSTANCE_PATH=os.path.join(workdir, "instance"),
            TETHER_PRESENCE_INTERVAL="0.5",
            TETHER_PRESENCE_TIMEOUT="3",
            # Longer than a server restart takes on a busy machine; tests of a lost agent set less.
            TETHER_AGENT_LOST_GRACE="10",
        )
        env.update(extra_env or {})
        log = os.path.join(workdir, f"server-{self.port}.log")
        super().__init__([sys.executable, "wsgi.py"], env, log)

    def start(self):
        super().start()
        wait_until(self._serving, message=f"server on {self.url}")
        return self

    def _serving(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited:\n{self.output()}")
        try:
            return requests.get(self.url + "/login", timeout=1).status_code == 200
        except requests.RequestException:
            return False


class AgentProcess(Process):
    """`python -m agent_client` against a server, running Claude Code against the stand-in."""

    def __init__(self, server_url, token, workdir, claude_env, name="agent", roots=(), extra_args=()):
        env = dict(os.environ)
        env.update(claude_env)
        self.state_dir = os.path.join(workdir, f"agent-state-{name}")
        args = [
            sys.executable,
            "-m",
            "agent_client",
            "--server",
            server_url,
            "--token",
            token,
            "--name",
            name,
            "--state-dir",
            self.state_dir,
        ]
        for root in roots or [workdir]:
            args += ["--root", root]
        super().__init__(args + list(extra_args), env, os.path.join(workdir, f"agent-{name}.log"))


class WebClient:
    """A logged-in browser stand-in: a requests session plus a Socket.IO client on /web."""

    def __init__(self, server_url, username, password):
        self.url = server_url
        self.http = requests.Session()
        self.login(username, password)
        self.sio = socketio.Client(
            http_session=self.http, reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1
        )
        self.results = []  # every command_result received, in arrival order
        self.permissions = []
        self.statuses = []
        self.events = []
        self.cond = threading.Condition()
        self.following = {}  # session id -> highest seq received
        self.connects = 0
        for name in (
            "command_result",
            "permission_request",
            "agent_status",
            "permission_resolved",
            "command_state",
        ):
            self.sio.on(name, self._recorder(name), namespace="/web")
        self.sio.on("connect", self._resubscribe, namespace="/web")
        self.sio.on("disconnect", self._come_back_if_cut_off, namespace="/web")

    def login(self, username, password):
        page = self.http.get(self.url + "/login")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text) or re.search(
            r'name="csrf_token" value="([^"]+)"', page.text
        )
        reply = self.http.post(
            self.url + "/login",
            data={"username": username, "password": password, "csrf_token": token.group(1)},
            allow_redirects=False,
        )
        assert reply.status_code == 302, f"login failed: {reply.status_code}"

    def connect(self):
        self.sio.connect(self.url, namespaces=["/web"], transports=["websocket"], wait_timeout=10)
        return self

    def close(self):
        self.sio.disconnect()

    def drop_connection(self):
        """Cut the socket under the client, like a lost network: it reconnects by itself."""
        self.sio.eio.ws.sock.shutdown(socket.SHUT_RDWR)

    def _come_back_if_cut_off(self, reason=None):
        """Like the page (static/js/lib/connection.js): a socket the server cut off (a slow
        reader) comes back a second later and resubscribes. The client library reconnects by
        itself only after a lost transport; a test that sets `sio.reconnection = False` stays cut."""
        if reason == self.sio.reason.SERVER_DISCONNECT and self.sio.reconnection:
            self.sio.start_background_task(self._reconnect_soon)

    def _reconnect_soon(self, attempts=10):
        for _ in range(attempts):
            time.sleep(1)
            try:
                self.connect()
                return
            except socketio.exceptions.ConnectionError:
                pass  # still closing, or refused (signed out): try again, then leave it cut

    def follow(self, session_id, after_seq=0):
        """Subscribe like the page does: keep the last seq, resubscribe after reconnects."""
        with self.cond:
            self.following[session_id] = after_seq
        return self.call("subscribe", {"sessionId": session_id, "afterSeq": after_seq})

    def _resubscribe(self):
        with self.cond:
            self.connects += 1
            following = dict(self.following)
        for session_id, last_seq in following.items():
            self.sio.start_background_task(
                self.sio.emit,
                "subscribe",
                {"type": "subscribe", "sessionId": session_id, "afterSeq": last_seq},
                namespace="/web",
            )

    def _track(self, result):
        last = self.following.get(result["sessionId"])
        if last is not None:
            self.following[result["sessionId"]] = max(last, result["seq"])

    def _recorder(self, name):
        def record(payload):
            with self.cond:
                self.events.append((name, payload))
                if name == "command_result":
                    self._track(payload)
                {
                    "command_result": self.results,
                    "permission_request": self.permissions,
                    "agent_status": self.statuses,
                }.get(name, []).append(payload)
                self.cond.notify_all()

        return record

    def call(self, event, payload, timeout=15):
        return self.sio.call(event, {"type": event, **payload}, namespace="/web", timeout=timeout)

    def run(self, project_id, command, session_id=None, **extra):
        payload = {"projectId": project_id, "command": command, **extra}
        if session_id:
            payload["sessionId"] = session_id
        reply = self.call("execute_command", payload)
        assert reply["ok"], reply
        with self.cond:
            self.following.setdefault(reply["sessionId"], 0)
        return reply

    def session_results(self, session_id):
        """The session's results by seq, duplicates kept (so a gapless check still sees them).

        Sorted because python-engineio's client runs each incoming message's handler in a
        thread of its own: on a busy machine two results may be *recorded* out of order
        even though the socket delivered them in order. The pages' own order checks run
        in the real browser (tests/browser).
        """
        with self.cond:
            results = [r for r in self.results if r["sessionId"] == session_id]
        return sorted(results, key=lambda r: r["seq"])

    def session_results_of(self, command_id):
        """One command's results by seq."""
        with self.cond:
            results = [r for r in self.results if r["commandId"] == command_id]
        return sorted(results, key=lambda r: r["seq"])

    def wait_final(self, command_id, timeout=60, past_agent_lost=False):
        """Wait for a command's complete or error result; returns that result.

        `past_agent_lost`: a command given up as agent_lost reopens when its agent comes back
        with the rest (docs/protocol.md); wait for the final result after that instead.
        """

        def final():
            with self.cond:
                results = [r for r in self.results if r["commandId"] == command_id]
            finals = sorted((r for r in results if r["status"] != "streaming"), key=lambda r: r["seq"])
            if past_agent_lost:
                finals = [r for r in finals if (r.get("error") or {}).get("code") != "agent_lost"]
            last = finals[-1] if finals else None
            if last is None:
                return None
            # Handlers run in threads of their own (see session_results): wait until every
            # result before the last one is recorded too. A command's seqs are contiguous.
            # A duplicate must not hide the end: the caller's checks of the text show it.
            seqs = sorted({r["seq"] for r in results if r["seq"] <= last["seq"]})
            return last if seqs == list(range(seqs[0], last["seq"] + 1)) else None

        try:
            return wait_until(final, timeout, f"the end of command {command_id}")
        except AssertionError as error:
            raise AssertionError(f"{error}; {self._received(command_id)}") from None

    def _received(self, command_id):
        """What this client got of a command, for a failure message: its results' seqs and statuses,
        its states, and how often the socket connected."""
        with self.cond:
            results = sorted((r["seq"], r["status"]) for r in self.results if r["commandId"] == command_id)
            states = [
                p.get("state")
                for name, p in self.events
                if name == "command_state" and p.get("commandId") == command_id
            ]
            connects = self.connects
        shown = results if len(results) <= 12 else [*results[:4], "...", *results[-6:]]
        return f"received {len(results)} results {shown}, states {states}, {connects} connects"

    def text_of(self, command_id):
        with self.cond:
            results = sorted(
                (r for r in self.results if r["commandId"] == command_id), key=lambda r: r["seq"]
            )
        return "".join(r["response"] for r in results)

    def agent_online(self, agent_id, online=True, timeout=WAIT):
        def seen():
            with self.cond:
                states = [s["online"] for s in self.statuses if s["agentId"] == agent_id]
            return states and states[-1] == online

        return wait_until(seen, timeout, f"agent {agent_id} {'online' if online else 'offline'}")


def events_of(browser, command_id, kind):
    """The structured Claude Code events of one kind (tool_use, system, result...) of a command."""
    with browser.cond:
        return [
            r["event"]
            for r in browser.results
            if r["commandId"] == command_id and r.get("event", {}).get("type") == kind
        ]


def assert_gapless(results):
    """Seqs of a session's results, as received: 1..n with no gap and no duplicate."""
    seqs = [r["seq"] for r in results]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"gap or duplicate in {seqs[:50]}..."


def new_tempdir():
    return tempfile.mkdtemp(prefix="tether-test-")


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:8]}"
