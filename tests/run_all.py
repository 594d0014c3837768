"""`make test`: every pass of the suite, then one line that sums them up.

The whole suite runs once per async mode (gevent, eventlet), and all but the
browser tests again on PostgreSQL; each pass in its own pytest process because
the async mode and the database are chosen per process.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

PASSES = [
    ("sqlite, gevent: everything", {"TETHER_ASYNC_MODE": "gevent"}, []),
    ("sqlite, eventlet: everything", {"TETHER_ASYNC_MODE": "eventlet"}, []),
    ("postgresql, gevent: all but browser", {"TETHER_TEST_DB": "postgresql"}, ["-m", "not browser"]),
]


def check_chromium():
    if not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"):
        sys.exit("browser tests need Debian's Chromium: apt-get install -y chromium")


def run_pass(name, env_overrides, args, report):
    print(f"\n=== {name} ===", flush=True)
    env = dict(os.environ, **env_overrides)
    command = [sys.executable, "-m", "pytest", "-q", f"--junitxml={report}", *args, *sys.argv[1:]]
    code = subprocess.call(command, env=env)
    return code, counts(report)


def counts(report):
    if not os.path.exists(report):
        return {"passed": 0, "failed": 1, "skipped": 0}
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, failures, errors, skipped = (
        int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")
    )
    return {"passed": total - failures - errors - skipped, "failed": failures + errors, "skipped": skipped}


def main():
    check_chromium()
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, env, args) in enumerate(PASSES):
            code, result = run_pass(name, env, args, os.path.join(tmp, f"pass{index}.xml"))
            if code not in (0, 5):  # 5: no tests collected in this pass
                worst = code or 1
            for key in totals:
                totals[key] += result[key]
    print(f"\nall passes: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    sys.exit(1 if worst or totals["failed"] else 0)


if __name__ == "__main__":
    main()
