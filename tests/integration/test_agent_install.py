"""The agent on another machine: the dashboard's one command, run for real.

A real server serves the wheel it built from this checkout. In a home directory of its
own, `bash` runs the install command the dashboard shows (a fresh virtual environment,
`pip install` of the wheel's URL, `tether-agent --pair CODE`), with a code made by the
real `flask agents pair`. That agent then answers a command through real Claude Code
against the scripted model.

Installing claude-agent-sdk (about 400 MB) takes a while even from pip's cache, so the
whole module shares ONE such virtual environment and agent.
"""

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import update

from app import agent_dist, db, pairing
from app.models import Agent, PairingCode, hash_token, utcnow
from tests.conftest import make_seed
from tests.harness import ServerProcess, WebClient, flask_result, wait_until
from tests.sockets import app_with
from tests.test_agent_dist import SERVER_ONLY

# Creating the environment and installing the wheel's dependencies comes first.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

INSTALL_WAIT = 600


@dataclass
class Machine:
    """The other machine: a home directory with the agent installed by the dashboard's command."""

    app: object
    database_url: str
    workdir: str
    server: ServerProcess
    home: str
    env: dict
    seed: object
    code: str
    process: subprocess.Popen
    log_path: str

    @property
    def bin(self):
        return os.path.join(self.home, ".tether-agent", "bin")

    def run(self, *args, timeout=60):
        """A command of the installed environment (python, pip, tether-agent), as that machine's user."""
        return subprocess.run(
            [os.path.join(self.bin, args[0]), *args[1:]],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as file:
            return file.read()


class Wheel:
    """What GET /agent/install says, in the shape agent_dist's commands take."""

    def __init__(self, server_url):
        answer = requests.get(server_url + "/agent/install", timeout=10).json()
        self.version, self.path = answer["version"], answer["wheel"]


def machine_env(home, claude_env):
    """A user on another machine: their own HOME, the Python 3.11 of this test run as `python3`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TETHER_", "VIRTUAL_ENV"))}
    env.update(claude_env)
    env.update(HOME=home, PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    env.pop("XDG_STATE_HOME", None)
    env.pop("PYTHONPATH", None)  # nothing of this checkout on that machine
    return env


@pytest.fixture(scope="module")
def machine(tmp_path_factory, claude_env, databases):
    workdir = tmp_path_factory.mktemp("install")
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(databases.fresh(str(workdir)))
        app = stack.enter_context(app_with(database_url))
        server = ServerProcess(database_url, str(workdir)).start()
        stack.callback(server.stop)
        home = workdir / "home"
        (home / "code").mkdir(parents=True)
        seed = make_seed(app, str(home / "code"), "alice", "laptop")
        code = flask_result(database_url, workdir / "cli", "agents", "pair", "alice", "laptop")
        command = agent_dist.install_command(server.url, Wheel(server.url), code)
        env = machine_env(str(home), claude_env)
        log_path = str(workdir / "machine.log")
        log = stack.enter_context(open(log_path, "ab"))
        # Its own process group: the agent is bash's child, and ends with it at teardown.
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=home,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stack.callback(stop_group, process)
        found = Machine(app, database_url, workdir, server, str(home), env, seed, code, process, log_path)

        def online():
            assert process.poll() is None, f"the install command ended:\n{found.log()}"
            with app.app_context():
                db.session.expire_all()
                return db.session.get(Agent, seed.agent_id).online

        wait_until(online, INSTALL_WAIT, "the installed agent to come online")
        yield found


def stop_group(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def state_dir(machine):
    base = os.path.join(machine.home, ".local", "state", "tether-agent")
    (name,) = os.listdir(base)  # the hostname: no --name was given
    return os.path.join(base, name)


# -- the environment -------------------------------------------------------------------------------


def test_the_wheel_from_the_servers_url_installs_the_agent_without_the_server(machine):
    assert machine.run("python", "-c", "import flask").returncode != 0
    imported = machine.run("python", "-c", "import agent_client.client, agent_client.claude_runner, protocol")
    assert imported.returncode == 0, imported.stderr
    installed = {
        entry["name"].lower(): entry["version"]
        for entry in json.loads(machine.run("pip", "list", "--format", "json").stdout)
    }
    assert installed["tether-agent"] == Wheel(machine.server.url).version
    assert not [name for name in installed if any(word in name for word in SERVER_ONLY)], installed
    assert (
        machine.run("python", "-c", "import sys; print(sys.prefix)").stdout.strip().startswith(machine.home)
    )


# -- the paired agent at work ----------------------------------------------------------------------


def test_the_paired_agent_answers_a_command_whole_and_reports_the_servers_version(machine):
    browser = WebClient(machine.server.url, machine.seed.username, machine.seed.password).connect()
    try:
        reply = browser.run(machine.seed.project_id, "deltas: 400")
        final = browser.wait_final(reply["commandId"], timeout=120)
        assert final["status"] == "complete", final
        assert browser.text_of(reply["commandId"]) == " ".join(f"w{i}" for i in range(400))
    finally:
        browser.close()
    with machine.app.app_context():
        assert db.session.get(Agent, machine.seed.agent_id).version == Wheel(machine.server.url).version


def test_the_token_is_kept_readable_by_its_user_only_and_never_on_a_command_line(machine):
    path = os.path.join(state_dir(machine), "token.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, encoding="utf-8") as file:
        token = json.load(file)["token"]
    with machine.app.app_context():
        assert db.session.get(Agent, machine.seed.agent_id).token_hash == hash_token(token)
    assert token != machine.seed.token  # the trade issued a fresh one
    command_lines = list(every_command_line())
    assert any(b"tether-agent" in line for line in command_lines)
    assert not [line for line in command_lines if token.encode() in line]


def every_command_line():
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # the process ended while we looked
                yield (entry / "cmdline").read_bytes()


# -- codes refused -------------------------------------------------------------------------------


def pair_with(machine, code, server=None, name="spare"):
    """`tether-agent --pair CODE` in a state directory of its own; returns the finished process."""
    return machine.run(
        "tether-agent",
        "--server",
        (server or machine.server).url,
        "--pair",
        code,
        "--state-dir",
        os.path.join(machine.home, f"state-{name}"),
    )


def test_a_code_is_refused_the_second_time(machine):
    done = pair_with(machine, machine.code)

    assert done.returncode == 78
    assert "the server refused the pairing code: unknown, used or expired pairing code" in done.stderr
    assert not os.path.exists(os.path.join(machine.home, "state-spare", "token.json"))


def test_a_code_is_refused_after_it_expires(machine):
    code = flask_result(machine.database_url, machine.workdir / "cli", "agents", "pair", "alice", "spare")
    with machine.app.app_context():
        digest = pairing.hash_code(pairing.normalise(code))
        db.session.execute(
            update(PairingCode)
            .where(PairingCode.code_hash == digest)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()

    done = pair_with(machine, code)

    assert done.returncode == 78 and "unknown, used or expired pairing code" in done.stderr


def test_wrong_codes_are_rate_limited(machine):
    # A server process of its own: the limit counts per process, and holds 127.0.0.1 back.
    other = ServerProcess(machine.database_url, str(machine.workdir)).start()
    try:
        statuses = [
            requests.post(
                other.url + "/agent/pair", json={"code": pairing.new_code()}, timeout=10
            ).status_code
            for _ in range(machine.app.config["PAIR_MAX_FAILURES"])
        ]
        assert statuses == [401] * len(statuses)
        code = flask_result(machine.database_url, machine.workdir / "cli", "agents", "pair", "alice", "spare")

        done = pair_with(machine, code, server=other)

        assert done.returncode == 78 and "too many wrong pairing codes" in done.stderr
    finally:
        other.stop()
    # Refused before it was looked at: the code is still good where no wrong ones were tried.
    reply = requests.post(machine.server.url + "/agent/pair", json={"code": code}, timeout=10)
    assert reply.status_code == 200 and reply.json()["agentName"] == "spare"
