"""Screenshots of the pages for docs/screenshots (overwritten on every run)."""

import os

from playwright.sync_api import expect

from tests.browser.helpers import (
    ANSWER_TIMEOUT_MS,
    DESKTOP,
    PHONE,
    answer,
    screenshot,
    send,
    session_id_of,
    turn,
    wait_state,
)

MARKDOWN_ANSWER = """say: This is a small **Flask** app. `create_app()` reads the settings on *every* request:

```python
@lru_cache
def settings():
    return load_settings(os.environ.get("APP_ENV", "production"))
```

Let me look at the files first.
bash: ls -1"""


def make_project_files(path):
    for name, text in {
        "README.md": "# demo\n",
        "app.py": "print('hello')\n",
        "requirements.txt": "flask\n",
    }.items():
        with open(os.path.join(path, name), "w") as file:
            file.write(text)


def test_screenshots_of_login_dashboard_and_chat(ui):
    make_project_files(ui.seed.project_path)
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = ui.page(viewport)
        page.goto("/login")
        page.locator("input[name=username]").fill(ui.seed.username)
        screenshot(page, f"login-{size}.png")

    ui.start_agent()
    desktop = ui.signed_in_page(DESKTOP)
    phone = ui.signed_in_page(PHONE)
    for size, page in (("desktop", desktop), ("phone", phone)):
        expect(page.locator(f"[data-agent-id='{ui.seed.agent_id}']")).to_have_attribute(
            "data-agent-status", "online", timeout=ANSWER_TIMEOUT_MS
        )
        expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
        screenshot(page, f"dashboard-{size}.png")

    ui.open_chat(desktop)
    screenshot(desktop, "chat-empty-desktop.png")
    send(desktop, MARKDOWN_ANSWER)
    wait_state(turn(desktop))
    expect(desktop.get_by_test_id("tool-call")).to_have_attribute("data-tool-state", "done")
    expect(answer(desktop).locator("pre code.language-python.hljs")).to_be_visible()
    screenshot(desktop, "chat-answer-desktop.png")
    send(desktop, "write: NOTES.md # Notes\nCache the settings once per process.")
    expect(desktop.get_by_test_id("permission-request")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    screenshot(desktop, "chat-permission-desktop.png")

    ui.open_chat(phone, session_id_of(desktop))
    expect(phone.get_by_test_id("permission-request")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    screenshot(phone, "chat-permission-phone.png")
    phone.locator(".sessions-toggle").click()
    expect(phone.get_by_test_id("session-list")).to_be_visible()
    screenshot(phone, "chat-sessions-phone.png")
    phone.get_by_test_id("close-sessions").click()

    desktop.get_by_test_id("allow").click()
    wait_state(turn(desktop))
    wait_state(turn(phone))


def test_screenshots_of_the_workspace_and_attachments(ui):
    from tests.browser.test_workspace_pages import entry, make_repo
    from tests.test_claude_steering import png

    root = ui.seed.project_path
    make_repo(root)
    with open(os.path.join(root, "src", "app.py"), "a") as file:
        file.write("\n\nif __name__ == '__main__':\n    main()\n")
    ui.start_agent()
    shot = png(64, 40)
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = ui.chat(viewport=viewport)
        page.get_by_test_id("open-files").click()
        entry(page, "src").click()
        entry(page, "src/app.py").click()
        expect(page.get_by_test_id("file-content").locator(".hljs-keyword").first).to_be_visible()
        screenshot(page, f"workspace-files-{size}.png")
        page.get_by_test_id("changes-tab").click()
        change = page.locator("[data-testid=change-file][data-path='src/app.py']")
        change.locator("summary").click()
        expect(change.get_by_test_id("diff")).to_be_visible()
        screenshot(page, f"workspace-changes-{size}.png")
        page.get_by_test_id("close-workspace").click()
        page.get_by_test_id("attach-input").set_input_files(
            [
                {"name": "screenshot.png", "mimeType": "image/png", "buffer": shot},
                {"name": "error.log", "mimeType": "text/plain", "buffer": b"Traceback (most recent call)\n"},
            ]
        )
        expect(page.get_by_test_id("attachment")).to_have_count(2)
        page.get_by_test_id("prompt").fill("Why does this fail? The log and a screenshot are attached.")
        screenshot(page, f"chat-attachments-{size}.png")
