"""tests/lanes.py: marks follow the fixtures, and a unit test cannot start a process.

Each test runs a small pytest session in this process (pytester) with the lanes plugin.
"""

import os

import pytest

from tests.lanes import FIXTURE_MARKS

CONFTEST = """
import subprocess
import pytest
from tests.lanes import starts

pytest_plugins = ["tests.lanes"]


@pytest.fixture
@starts("integration")
def lanes_probe_process():
    return subprocess.run(["true"]).returncode


@pytest.fixture
@starts("browser")
def lanes_probe_browser():
    return "chromium"


@pytest.fixture
def lanes_probe_through(lanes_probe_process):
    return lanes_probe_process
"""


# Without the plugins these sessions need not: pytester forgets the modules a session imported,
# and Hypothesis's plugin would import the whole of Hypothesis again each time.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


@pytest.fixture
def inner(pytester):
    pytester.makeconftest(CONFTEST)
    yield pytester
    for name in ("lanes_probe_process", "lanes_probe_browser"):
        FIXTURE_MARKS.pop(name, None)


def outcome(inner, source):
    """Run one test file in a session of its own: (the report that decided, the failures' text)."""
    inner.makepyfile(source)
    reports = inner.inline_run(*QUIET).getreports("pytest_runtest_logreport")
    failed = [r for r in reports if r.failed]
    return (failed or [r for r in reports if r.when == "call"])[0], "".join(str(r.longrepr) for r in failed)


def test_marks_follow_the_fixtures_a_test_uses(inner):
    inner.makepyfile(
        """
        import pytest

        def test_plain(): pass
        def test_direct(lanes_probe_process): pass
        def test_through_another_fixture(lanes_probe_through): pass
        def test_browser(lanes_probe_browser): pass

        @pytest.mark.integration
        def test_marked(): pass
        """
    )
    items, _ = inner.inline_genitems()
    marks = {
        item.name: {m for m in ("integration", "browser") if item.get_closest_marker(m)} for item in items
    }

    assert marks == {
        "test_plain": set(),
        "test_direct": {"integration"},
        "test_through_another_fixture": {"integration"},
        "test_browser": {"browser"},
        "test_marked": {"integration"},
    }


def test_a_unit_test_that_starts_a_process_fails_and_the_process_never_runs(inner, tmp_path):
    marker = tmp_path / "ran"
    report, message = outcome(
        inner,
        f"""
        import subprocess

        def test_unit():
            subprocess.run(["touch", {str(marker)!r}])
        """,
    )

    assert report.failed and report.when == "call"
    assert "test_unit started a process (subprocess: ['touch'" in message
    assert "not marked integration or browser" in message
    assert not marker.exists()


def test_a_process_started_from_another_thread_or_caught_still_fails_the_test(inner):
    report, message = outcome(
        inner,
        """
        import subprocess
        import threading

        def test_unit():
            def start():
                try:
                    subprocess.run(["true"])
                except Exception:
                    pass  # swallowed: the guard fails the test all the same
            thread = threading.Thread(target=start, name="helper")
            thread.start()
            thread.join()
        """,
    )

    assert report.failed
    assert "in thread 'helper'" in message


def test_a_fixture_that_starts_a_process_undeclared_fails_at_setup(inner):
    report, message = outcome(
        inner,
        """
        import os
        import pytest

        @pytest.fixture
        def sneaky():
            os.system("true")

        def test_unit(sneaky):
            pass
        """,
    )

    assert report.failed and report.when == "setup"
    assert "os.system('true')" in message


WAYS = {
    "subprocess.Popen": "subprocess.Popen(['true']).wait()",
    "os.popen": "os.popen('true').close()",
    "os.system": "os.system('true')",
    "os.posix_spawn": "os.waitpid(os.posix_spawn('/bin/true', ['true'], dict(os.environ)), 0)",
    "os.fork": "pid = os.fork()\n    if pid == 0: os._exit(0)\n    os.waitpid(pid, 0)",
    "multiprocessing (spawn)": "multiprocessing.get_context('spawn').Process(target=print).start()",
    "multiprocessing (fork)": "multiprocessing.get_context('fork').Process(target=print).start()",
    # In a thread of its own: Playwright's sync API (the browser tests, earlier in the same pass)
    # leaves an event loop running in the main thread, where asyncio.run refuses to start.
    "asyncio": "run = lambda: asyncio.run(asyncio.create_subprocess_exec('true'))\n"
    "    thread = threading.Thread(target=run); thread.start(); thread.join()",
}


@pytest.mark.parametrize("way", WAYS)
def test_every_way_to_start_a_process_is_refused(inner, way):
    report, message = outcome(
        inner,
        f"""
import asyncio, multiprocessing, os, subprocess, threading
import pytest
from tests.lanes import ProcessInUnitTest

def test_unit():
    {WAYS[way]}
""",
    )

    assert report.failed, f"{way} started a process in a unit test"
    assert "not marked integration or browser" in message


def test_the_guard_puts_back_what_it_replaced(inner):
    import subprocess

    guarded = subprocess.Popen._execute_child  # this test's own guard
    outcome(inner, "def test_unit(): pass")

    assert subprocess.Popen._execute_child is guarded
    assert guarded.__wrapped__.__module__ == "subprocess"
    assert os.fork.__wrapped__.__name__ == "fork"


@pytest.mark.integration  # its inner tests start processes, which this test's own guard would refuse
def test_marked_tests_and_declared_fixtures_may_start_processes(inner):
    inner.makepyfile(
        """
        import subprocess
        import pytest

        @pytest.mark.integration
        def test_marked():
            assert subprocess.run(["true"]).returncode == 0

        def test_through_a_declared_fixture(lanes_probe_through):
            assert lanes_probe_through == 0
        """
    )
    inner.inline_run(*QUIET).assertoutcome(passed=2)
