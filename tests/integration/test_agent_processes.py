"""The agent's Claude Code processes: they end with the agent, and only a few stay warm.

Before, a killed agent's Claude Code (SIGKILL, as the OOM killer sends) was
re-parented and ran its turn to the end, still calling the model API, and the
tool processes it had started ran on as well. And every idle session kept its
Claude Code process (about 175 MB) for the whole idle timeout.
"""

import contextlib
import itertools
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.claude_fixtures import claude_children, running
from tests.harness import wait_until

GONE_S = 15  # Claude Code exits at once on SIGTERM, about 1.5 s with a Bash command to stop


def processes_with_command(words):
    """Pids whose command line is exactly `words`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().split(b"\0")[:-1] == words:
                found.append(int(entry.name))
        except OSError:
            continue  # ended while we looked
    return found


def kill_agent(live):
    """SIGKILL the agent in the middle of its turn; returns its Claude Code's pid."""
    agent = live.latest_agent
    (cli,) = claude_children(agent.proc.pid)
    agent.stop(signal.SIGKILL)
    return cli


@contextlib.contextmanager
def ended_at_last(pids):
    """Kill what a failing test left running (our own processes, by pid)."""
    try:
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_claude_code_stops_streaming_when_its_agent_is_killed(live, standin):
    seed, (browser,) = live.ready()
    reply = browser.run(seed.project_id, "slow: 2000 50")  # 100 s if nothing stops it
    wait_until(lambda: len(browser.text_of(reply["commandId"])) > 20, message="the answer to stream")
    with ended_at_last([kill_agent(live)]) as (cli,):
        wait_until(lambda: not running(cli), GONE_S, "Claude Code to end with its agent")
        # The answer it was reading is cut: the stand-in streams to nobody.
        wait_until(lambda: standin.streaming == 0, GONE_S, "the stand-in's stream to end")


def test_a_running_tool_command_ends_with_the_agent_too(live):
    seed, (browser,) = live.ready()
    browser.run(seed.project_id, "bash: echo started && sleep 3141")  # read-only: no permission asked
    (sleep,) = wait_until(lambda: processes_with_command([b"sleep", b"3141"]), message="the command to run")
    with ended_at_last([kill_agent(live), sleep]) as (cli, sleep):
        wait_until(lambda: not (running(cli) or running(sleep)), GONE_S, "Claude Code and its command to end")


def test_agent_keeps_at_most_max_warm_sessions_and_a_closed_one_resumes(live):
    seed, (browser,) = live.ready(extra_args=["--max-warm-sessions", "1"])
    agent = live.latest_agent
    first = browser.run(seed.project_id, "say: the first session")
    assert browser.wait_final(first["commandId"])["status"] == "complete"
    second = browser.run(seed.project_id, "say: the second session")
    assert browser.wait_final(second["commandId"])["status"] == "complete"
    assert len(claude_children(agent.proc.pid)) == 1

    again = browser.run(seed.project_id, "recall", session_id=first["sessionId"])
    assert browser.wait_final(again["commandId"])["status"] == "complete"
    assert "1. say: the first session" in browser.text_of(again["commandId"])
    assert len(claude_children(agent.proc.pid)) == 1


def stopped_within(process, seconds):
    """True if `process` (a harness Process) exits within `seconds`."""
    try:
        process.proc.wait(seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def signal_until_stopped(process, signals, seconds=15):
    """Send `signals` over and over, 2 ms apart, until the agent says it has stopped: as a
    service manager, a terminal's Ctrl+C and `make run` may all signal it while it stops."""
    deadline = time.monotonic() + seconds
    for sig in itertools.cycle(signals):
        if "INFO stopped" in process.output() or process.proc.poll() is not None:
            break
        assert time.monotonic() < deadline, "the agent did not stop: " + process.output()[-3000:]
        process.send(sig)
        time.sleep(0.002)
    return stopped_within(process, 10)


@pytest.mark.parametrize(
    "signals", [[signal.SIGTERM], [signal.SIGINT, signal.SIGTERM]], ids=["TERM", "INT+TERM"]
)
def test_the_agent_stops_cleanly_however_many_signals_arrive_while_it_stops(live, signals):
    seed, (browser,) = live.ready()
    agent = live.latest_agent
    browser.run(seed.project_id, "bash: echo started && sleep 2718")
    (sleep,) = wait_until(lambda: processes_with_command([b"sleep", b"2718"]), message="the command to run")
    with ended_at_last([sleep]):
        assert signal_until_stopped(agent, signals), agent.output()[-3000:]
        assert agent.proc.returncode == 0, agent.output()[-3000:]
        assert "Traceback" not in agent.output()
