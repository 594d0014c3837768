"""Pytest plugin for running the real Claude Code CLI against the stand-in model.

Load it with ``pytest_plugins = ["tests.claude_fixtures"]`` in tests/conftest.py.

Fixtures:
    standin      the StandInModel, started once per test run on 127.0.0.1
    claude_env   environment variables that point Claude Code at the stand-in
                 (shared by the whole run: copy it before changing it)
    sink         a RecordingSink
    make_manager builds SessionManagers on claude_env and that sink, closed after the test;
                 the tests using it run Claude Code, so they are marked integration
    manager      one such SessionManager

Helpers:
    RecordingSink   a thread-safe Sink that records everything, with wait helpers
    make_claude_env build such an environment for any URL and config directory
    claude_children the pids of the Claude Code processes this process (or another) started
    running         whether a process exists and is not a zombie
    make_request    a RunRequest with a fresh command id
    run             run a command to its end, return its finish error

A condition that no sink call announces (a process ending) is polled with tests.harness.wait_until.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_client.claude_runner import RunRequest, SessionManager
from agent_client.standin import StandInModel
from tests.lanes import starts

WAIT_S = 60.0  # generous: a CLI start takes about a second, more on a busy CI machine
_ids = itertools.count(1)


def make_claude_env(base_url: str, config_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Environment for a Claude Code CLI that talks to base_url and keeps its state in config_dir."""
    return {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "tether-test-key",
        "CLAUDE_CONFIG_DIR": os.fspath(config_dir),
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }


@pytest.fixture(scope="session")
def standin():
    """The stand-in Messages API, one per test run."""
    with StandInModel() as model:
        yield model


@pytest.fixture(scope="session")
def claude_env(standin, tmp_path_factory) -> dict[str, str]:
    """Environment variables for the CLI: the stand-in's URL, a key, a temp config dir."""
    return make_claude_env(standin.url, tmp_path_factory.mktemp("claude-config"))


def claude_children(parent: int | None = None) -> list[int]:
    """Pids of the Claude Code processes that are children of `parent` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # the process ended while we looked
        # The command name sits in parentheses and may contain spaces.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if name == "claude" and fields[0] != "Z" and int(fields[1]) == parent:
            pids.append(int(entry.name))
    return pids


def running(pid: int) -> bool:
    """The process exists and is not a zombie (a re-parented zombie waits for a reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.fixture
def sink():
    return RecordingSink()


@pytest.fixture
@starts("integration")
def make_manager(sink, claude_env):
    """Build SessionManagers that are closed after the test."""
    managers = []

    def make(**options) -> SessionManager:
        options.setdefault("env", claude_env)
        manager = SessionManager(options.pop("sink", sink), **options)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.close()


@pytest.fixture
def manager(make_manager):
    return make_manager()


def make_request(cwd: str | os.PathLike[str], prompt: str, session_id: str = "s1", **fields) -> RunRequest:
    return RunRequest(
        session_id=session_id, command_id=f"c{next(_ids)}", prompt=prompt, cwd=os.fspath(cwd), **fields
    )


def run(manager: SessionManager, sink: RecordingSink, request: RunRequest, timeout: float = WAIT_S):
    """Run a command to its end; returns the finish error."""
    manager.run(request)
    return sink.wait_finish(request.command_id, timeout)


@dataclass
class PermissionAsk:
    """One recorded Sink.permission call."""

    session_id: str
    command_id: str
    request_id: str
    tool_name: str
    tool_input: dict


class RecordingSink:
    """A Sink that records every call, safe to call from any thread.

    ``calls`` keeps everything in order as (kind, session_id, command_id, payload).
    The ``wait_*`` helpers block on a condition variable until what they wait for
    was recorded, and fail the test with a summary after ``timeout`` seconds.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.calls: list[tuple[str, str, str, Any]] = []
        self.permissions: list[PermissionAsk] = []
        self.finishes: dict[str, dict | None] = {}
        self.finish_counts: dict[str, int] = {}
        self._texts: dict[str, list[str]] = {}
        self._chars: dict[str, int] = {}

    # --- the Sink interface ---------------------------------------------------

    def text(self, session_id: str, command_id: str, text: str) -> None:
        with self._cond:
            self._texts.setdefault(command_id, []).append(text)
            self._chars[command_id] = self._chars.get(command_id, 0) + len(text)
        self._record("text", session_id, command_id, text)

    def event(self, session_id: str, command_id: str, event: dict) -> None:
        self._record("event", session_id, command_id, event)

    def permission(
        self,
        session_id: str,
        command_id: str,
        request_id: str,
        tool_name: str,
        tool_input: dict,
    ) -> None:
        ask = PermissionAsk(session_id, command_id, request_id, tool_name, tool_input)
        with self._cond:
            self.permissions.append(ask)
        self._record("permission", session_id, command_id, ask)

    def finish(self, session_id: str, command_id: str, error: dict | None) -> None:
        with self._cond:
            self.finishes[command_id] = error
            self.finish_counts[command_id] = self.finish_counts.get(command_id, 0) + 1
        self._record("finish", session_id, command_id, error)

    def _record(self, kind: str, session_id: str, command_id: str, payload: Any) -> None:
        with self._cond:
            self.calls.append((kind, session_id, command_id, payload))
            self._cond.notify_all()

    # --- reading ----------------------------------------------------------------

    def texts(self, command_id: str) -> list[str]:
        """The text deltas of a command, in order."""
        with self._cond:
            return list(self._texts.get(command_id, []))

    def text_of(self, command_id: str) -> str:
        """The whole streamed text of a command."""
        return "".join(self.texts(command_id))

    def events(self, command_id: str, type_: str | None = None) -> list[dict]:
        """The events of a command, optionally only those of one type."""
        with self._cond:
            return [
                p
                for k, _, c, p in self.calls
                if k == "event" and c == command_id and (type_ is None or p.get("type") == type_)
            ]

    def init_event(self, command_id: str) -> dict:
        """The command's system init event (it carries Claude Code's session id)."""
        inits = [e for e in self.events(command_id, "system") if e.get("subtype") == "init"]
        assert inits, f"no init event for {command_id}: {self.summary(command_id)}"
        return inits[0]

    def summary(self, command_id: str | None = None) -> str:
        """A short description of what was recorded, for failure messages."""
        with self._cond:
            calls = [c for c in self.calls if command_id is None or c[2] == command_id]
        texts = "".join(p for k, _, _, p in calls if k == "text")
        others = [(k, c, p) for k, _, c, p in calls if k != "text"]
        return f"text={texts[:500]!r} other={others!r}"[:3000]

    # --- waiting ------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], Any], timeout: float = WAIT_S, what: str = "") -> Any:
        """Block until predicate() is truthy (checked on every record); return its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout} s waiting for {what or predicate}: {self.summary()}"
                    )
                self._cond.wait(remaining)

    def wait_finish(self, command_id: str, timeout: float = WAIT_S) -> dict | None:
        """Wait for a command's finish and return its error (None on success)."""
        self.wait_for(lambda: command_id in self.finishes, timeout, f"finish of {command_id}")
        with self._cond:
            return self.finishes[command_id]

    def wait_permission(self, command_id: str, timeout: float = WAIT_S) -> PermissionAsk:
        """Wait for the first permission request of a command."""

        def ask() -> PermissionAsk | None:
            return next((p for p in self.permissions if p.command_id == command_id), None)

        return self.wait_for(ask, timeout, f"a permission request of {command_id}")

    def wait_text(self, command_id: str, min_chars: int = 1, timeout: float = WAIT_S) -> str:
        """Wait until at least min_chars of a command's text arrived; return the text so far."""
        self.wait_for(
            lambda: self._chars.get(command_id, 0) >= min_chars,
            timeout,
            f"{min_chars} characters of text from {command_id}",
        )
        return self.text_of(command_id)
