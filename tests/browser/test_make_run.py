"""`make run` as a newcomer meets it: `flask --app wsgi dev` on a fresh instance folder with no
Anthropic credentials, then Chromium: sign in with the printed password, open the workspace, and
the demo tour writes a file, runs it, and the files and changes panels show it."""

import os
import re
import sys

import pytest
from playwright.sync_api import expect

from agent_client.standin import TOUR_FILE, TOUR_GREETING
from tests.browser.helpers import ANSWER_TIMEOUT_MS, answer, send, turn, wait_state
from tests.browser.test_demo_tour import allow
from tests.harness import Process, free_port, wait_until

BANNER = re.compile(r"Tether is running at (\S+)\n\s+Sign in as (\S+) / (\S+)")


@pytest.fixture
def make_run(tmp_path):
    """The server and its local agent as `make run` starts them (the venv aside), in tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "CLAUDE_", "TETHER_")) or key == "TETHER_ASYNC_MODE"
    }
    env.update(HOME=str(home), TETHER_INSTANCE_PATH=str(tmp_path / "instance"))
    port = free_port()
    server = Process(
        [sys.executable, "-m", "flask", "--app", "wsgi", "dev", "--port", str(port)],
        env,
        str(tmp_path / "make-run.log"),
    ).start()
    try:
        banner = wait_until(lambda: BANNER.search(server.output()), timeout=60, message="the banner")
        yield banner.groups(), tmp_path / "instance" / "workspace"
    finally:
        server.stop()


def test_make_run_signs_in_and_the_demo_tour_shows_in_the_files_and_changes_panels(make_run, browsers):
    (url, username, password), workspace = make_run
    page = browsers.page(base_url=url)
    page.goto("/login")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.locator("form button[type=submit]").click()
    expect(page).to_have_url(url + "/")
    page.get_by_role("link", name="workspace").first.click()
    expect(page.get_by_test_id("agent-status")).to_have_attribute(
        "data-agent-status", "online", timeout=ANSWER_TIMEOUT_MS
    )
    expect(page.get_by_test_id("demo-badge")).to_be_visible()

    send(page, "write me a hello world script")
    allow(page, "Write")
    allow(page, "Bash")
    wait_state(turn(page))
    expect(answer(page).locator("pre:visible", has_text=TOUR_GREETING).first).to_be_visible()

    page.get_by_test_id("open-files").click()
    expect(page.locator(f"[data-testid=file-entry][data-path='{TOUR_FILE}']")).to_be_visible()
    page.get_by_test_id("changes-tab").click()
    change = page.locator(f"[data-testid=change-file][data-path='{TOUR_FILE}']")
    expect(change).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(change).to_have_attribute("data-status", "untracked")
    assert (workspace / TOUR_FILE).exists()
