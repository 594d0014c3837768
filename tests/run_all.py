"""`make test`: every pass of the suite, two at a time, then one line that sums them up.

A pass is one pytest process, because the async mode of the servers the tests start and the
database are chosen per process. Together the passes run:

    sqlite, gevent       everything
    sqlite, eventlet     the tests that start the server (integration, browser); the unit tests
                         run the app in process, where the async mode plays no part
    postgresql, gevent   all but the browser tests

split into five passes so that two slots finish together: the longest start first, and the
two short browser passes fill the slot that frees first (three passes, longest paired with
the two others, took 44 min on CI's 2 cores; this split ~36).

Passes run TETHER_TEST_JOBS at a time (default 2: much of an integration test is waiting for
processes), each with its own temporary folder and JUnit report. A pass's output goes to a log
file that is printed whole when the pass ends, so two passes never interleave. Arguments are
handed to every pass (e.g. `-x`, `-k name`).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

# Longest first (minutes on CI's two cores, two passes at a time, in the comments).
PASSES = [
    ("postgresql, gevent: all but browser", {"TETHER_TEST_DB": "postgresql"}, ["-m", "not browser"]),  # 20
    ("sqlite, gevent: all but browser", {"TETHER_ASYNC_MODE": "gevent"}, ["-m", "not browser"]),  # 19
    (
        "sqlite, eventlet: integration",
        {"TETHER_ASYNC_MODE": "eventlet"},
        ["-m", "integration and not browser"],
    ),  # 15
    ("sqlite, gevent: browser", {"TETHER_ASYNC_MODE": "gevent"}, ["-m", "browser"]),  # 8
    ("sqlite, eventlet: browser", {"TETHER_ASYNC_MODE": "eventlet"}, ["-m", "browser"]),  # 8
]
NO_TESTS = 5  # pytest's exit code when a pass selects no test: not a failure


@dataclass
class Pass:
    name: str
    env: dict
    args: list
    folder: str
    process: subprocess.Popen = None
    started: float = 0.0
    seconds: float = 0.0
    code: int = None
    counts: dict = field(default_factory=dict)

    @property
    def log(self):
        return os.path.join(self.folder, "output.log")

    @property
    def report(self):
        return os.path.join(self.folder, "junit.xml")

    def start(self):
        os.makedirs(self.folder)
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            f"--basetemp={os.path.join(self.folder, 'tmp')}",
            f"--junitxml={self.report}",
            *self.args,
            *sys.argv[1:],
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, env=dict(os.environ, **self.env), stdout=log, stderr=subprocess.STDOUT
            )
        self.started = time.monotonic()
        print(f"started: {self.name}", flush=True)

    def finished(self):
        if self.process.poll() is None:
            return False
        self.code = self.process.returncode
        self.seconds = time.monotonic() - self.started
        self.counts = counts(self.report)
        return True

    @property
    def failed(self):
        return self.code not in (0, NO_TESTS) or self.counts["failed"] > 0

    def show(self):
        print(f"\n=== {self.name} (exit {self.code}, {self.seconds / 60:.1f} min) ===", flush=True)
        with open(self.log, "rb") as log:
            shutil.copyfileobj(log, sys.stdout.buffer)
        sys.stdout.flush()


def check_chromium():
    if not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"):
        sys.exit("browser tests need Debian's Chromium: apt-get install -y chromium")


def counts(report):
    """passed, failed and skipped from a JUnit report; a pass that wrote none failed."""
    if not os.path.exists(report):
        return {"passed": 0, "failed": 1, "skipped": 0}
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, failures, errors, skipped = (
        int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")
    )
    return {"passed": total - failures - errors - skipped, "failed": failures + errors, "skipped": skipped}


KINDS = ("passed", "failed", "skipped")


def summary(counts):
    return ", ".join(f"{counts[kind]} {kind}" for kind in KINDS)


def run(passes, jobs):
    """Run the passes, `jobs` at a time, showing each as it ends."""
    waiting, running = list(passes), []
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                running.append(waiting.pop(0))
                running[-1].start()
            for done in [p for p in running if p.finished()]:
                running.remove(done)
                done.show()
            time.sleep(0.5)
    finally:
        for left in running:  # interrupted: pytest ends its tests' processes on SIGINT
            left.process.send_signal(signal.SIGINT)
            try:
                left.process.wait(60)
            except subprocess.TimeoutExpired:
                left.process.kill()
                left.process.wait()


def main():
    check_chromium()
    jobs = max(1, int(os.environ.get("TETHER_TEST_JOBS", "2")))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tether-test-passes-") as tmp:
        passes = [Pass(*spec, os.path.join(tmp, f"pass{i}")) for i, spec in enumerate(PASSES)]
        run(passes, jobs)
    print(f"\n{len(passes)} passes, {jobs} at a time, in {(time.monotonic() - started) / 60:.1f} min:")
    for done in passes:
        print(f"  {done.name} (exit {done.code}, {done.seconds / 60:.1f} min): {summary(done.counts)}")
    print("total: " + summary({key: sum(p.counts[key] for p in passes) for key in KINDS}))
    sys.exit(1 if any(p.failed for p in passes) else 0)


if __name__ == "__main__":
    main()
