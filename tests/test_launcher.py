"""agent_client.launcher: a program started through it ends when the process that started it dies.

A stand-in agent (a small Python process) starts `sleep` through the launcher's
wrapper, as the runner starts Claude Code, and is then killed with SIGKILL.
The guard mode is the one macOS uses; on Linux it runs through its polling path.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap

import pytest

from agent_client import launcher
from tests.claude_fixtures import WAIT_S, running
from tests.harness import wait_until

pytestmark = pytest.mark.integration

AGENT = textwrap.dedent(
    """
    import subprocess, sys
    from agent_client import launcher
    wrapper = launcher.write_wrapper(sys.argv[1], "/bin/sleep", sys.argv[2])
    child = subprocess.Popen([wrapper, "300"])
    print(child.pid, flush=True)
    child.wait()
    """
)


def command_of(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as file:
        return file.read().decode().split("\0")[:-1]


@pytest.mark.parametrize("mode", launcher.MODES)
def test_program_ends_when_the_process_that_started_it_is_killed(tmp_path, mode):
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(tmp_path), mode], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        pid = int(agent.stdout.readline())
        # The launcher execs the program: same pid, nothing left in between.
        wait_until(lambda: command_of(pid) == ["/bin/sleep", "300"], WAIT_S, "the launcher to exec sleep")
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        wait_until(lambda: not running(pid), 15, "sleep to end with its agent")
    finally:
        agent.kill()
        agent.wait()
        agent.stdout.close()


@pytest.mark.parametrize("mode", launcher.MODES)
def test_program_gets_its_arguments_and_pipes(tmp_path, mode):
    wrapper = launcher.write_wrapper(str(tmp_path), "/bin/sh", mode)
    done = subprocess.run([wrapper, "-c", "echo ran"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout == "ran\n"


def test_launcher_refuses_when_its_parent_is_not_the_agent(tmp_path):
    wrapper = launcher.write_wrapper(str(tmp_path), "/bin/echo", "pdeathsig", agent_pid=1)
    done = subprocess.run([wrapper, "never"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and done.stdout == ""
    assert "ended before Claude Code started" in done.stderr


def test_launcher_says_when_the_program_cannot_run(tmp_path):
    wrapper = launcher.write_wrapper(str(tmp_path), str(tmp_path / "no-such-claude"), "pdeathsig")
    done = subprocess.run([wrapper], capture_output=True, text=True, timeout=30)
    assert done.returncode == 127 and "cannot run Claude Code" in done.stderr


def test_a_wrapper_lives_in_a_private_directory_and_dead_agents_ones_are_swept():
    ended = subprocess.Popen(["true"])
    ended.wait()  # its pid now names no process
    stale = tempfile.mkdtemp(prefix=f"{launcher.WRAPPER_PREFIX}{ended.pid}-")
    directory, wrapper = launcher.make_wrapper("/bin/true", "pdeathsig")
    try:
        assert not os.path.exists(stale)
        assert os.path.basename(directory).startswith(f"{launcher.WRAPPER_PREFIX}{os.getpid()}-")
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert os.path.dirname(wrapper) == directory and os.access(wrapper, os.X_OK)
        second, _ = launcher.make_wrapper("/bin/true", "pdeathsig")
        shutil.rmtree(second)
        assert os.path.exists(wrapper)  # a living agent's directory stays
    finally:
        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(directory)
