"""The test lanes: marks derived from what a test starts, and a guard that keeps the fast lane honest.

A test that starts a process (the server, an agent, Claude Code, `flask`, `python`)
is `integration`; one that starts Chromium is `browser`; everything else is a unit
test and runs in `make test-fast`. The marks come from the fixtures a test uses:
a fixture that starts processes is declared with `@starts("integration")` (or
"browser"), and every test that uses it, directly or through other fixtures, gets
the mark. A test that starts a process itself carries `@pytest.mark.integration`.

The guard checks the rest: while a test without either mark runs (setup, call and
teardown), starting a process raises ProcessInUnitTest, and a process started from
another thread fails the test all the same.

(PYTEST_DONT_REWRITE: tests/conftest.py imports this plugin before pytest loads it.)
"""

import _posixsubprocess
import os
import subprocess
import threading

import pytest

LANE_MARKS = ("integration", "browser")
FIXTURE_MARKS = {}  # fixture name -> the mark of every test that uses it


def starts(mark):
    """Declare a fixture as starting processes (put it under @pytest.fixture)."""
    assert mark in LANE_MARKS, mark

    def declare(function):
        FIXTURE_MARKS[function.__name__] = mark
        return function

    return declare


class ProcessInUnitTest(RuntimeError):
    """A test that is not marked integration or browser tried to start a process."""


def lane_of(item):
    """The lane mark a test carries, or None for a unit test."""
    return next((mark for mark in LANE_MARKS if item.get_closest_marker(mark)), None)


def pytest_collection_modifyitems(items):
    for item in items:
        for name in item.fixturenames:
            if name in FIXTURE_MARKS:
                item.add_marker(FIXTURE_MARKS[name])


# -- the guard ----------------------------------------------------------------------------------

STARTED = pytest.StashKey[list]()


def explain(item, what):
    return (
        f"{item.nodeid} started a process ({what}) in thread {threading.current_thread().name!r}, "
        "but is not marked integration or browser, so it would run in the fast lane. Mark it "
        "@pytest.mark.integration, or get the process from a fixture declared with "
        "@starts('integration') in tests/ (live, live_with, server, server_with, make_manager)."
    )


def refusing(item, function, describe):
    """`function`, refusing to run: records what was asked on the test and raises."""

    def refuse(*args, **kwargs):
        message = explain(item, describe(*args, **kwargs))
        item.stash[STARTED].append(message)
        raise ProcessInUnitTest(message)

    refuse.__wrapped__ = function
    return refuse


def describe_popen(popen, args, *rest, **kwargs):
    return f"subprocess: {args!r}"


def describe_call(name):
    return lambda *args, **kwargs: f"{name}({', '.join(map(repr, args[:2]))})"


# Every way this Python starts a process: Popen (subprocess.run, os.popen, asyncio and
# anyio subprocesses, Playwright's driver, Claude Code through claude-agent-sdk) goes
# through _execute_child; multiprocessing through fork or _posixsubprocess.fork_exec.
HOOKS = [
    (subprocess.Popen, "_execute_child", describe_popen),
    (os, "fork", describe_call("os.fork")),
    (os, "forkpty", describe_call("os.forkpty")),
    (os, "posix_spawn", describe_call("os.posix_spawn")),
    (os, "posix_spawnp", describe_call("os.posix_spawnp")),
    (os, "system", describe_call("os.system")),
    (_posixsubprocess, "fork_exec", describe_call("_posixsubprocess.fork_exec")),
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Run a unit test with every way to start a process refused."""
    if lane_of(item):
        return (yield)
    item.stash[STARTED] = []
    with pytest.MonkeyPatch.context() as patch:
        for owner, name, describe in HOOKS:
            patch.setattr(owner, name, refusing(item, getattr(owner, name), describe))
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A unit test that passed although it tried to start a process (in another thread, or
    catching the exception) fails with the guard's message."""
    report = yield
    started = item.stash.get(STARTED, [])
    if started:
        if report.passed:
            report.outcome = "failed"
            report.longrepr = "\n".join(started)
        started.clear()
    return report
