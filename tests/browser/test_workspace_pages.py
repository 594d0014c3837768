"""The chat page's workspace against the real agent and Claude Code: the files panel, the changes
panel after a Write, attachments (file input and paste) reaching the model, the model picker,
slash-command completion, and all of it on a phone."""

import base64
import os
import re
import uuid

from playwright.sync_api import expect

from agent_client.standin import prompt_blocks
from tests.browser.helpers import ANSWER_TIMEOUT_MS, PHONE, send, session_id_of, turn, wait_state
from tests.browser.test_phone import assert_fits_a_phone
from tests.test_claude_steering import png
from tests.test_git_changes import git

APP_PY = "import os\n\n\ndef main():\n    print('hello', os.getcwd())\n"


def make_files(root):
    """A small project: a folder with Python in it, a README, a PNG (binary), a repository or not."""
    os.makedirs(os.path.join(root, "src"), exist_ok=True)
    for name, text in {"src/app.py": APP_PY, "README.md": "# Project\n\nIt says hello.\n"}.items():
        with open(os.path.join(root, name), "w") as file:
            file.write(text)
    with open(os.path.join(root, "logo.png"), "wb") as file:
        file.write(png(8, 8))


def make_repo(root):
    make_files(root)
    with open(os.path.join(root, "notes.md"), "w") as file:
        file.write("first line\nkept line\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")


def entry(page, path):
    return page.locator(f"[data-testid=file-entry][data-path='{path}']")


def open_files(page):
    page.get_by_test_id("open-files").click()
    expect(page.get_by_test_id("files-panel")).to_be_visible()


def open_changes(page):
    page.get_by_test_id("open-changes").click()
    expect(page.get_by_test_id("changes-panel")).to_be_visible()


def paste_image(page, data: bytes, name="image.png"):
    """Paste a PNG as a screenshot arrives: a file alone on the clipboard, into the prompt."""
    page.get_by_test_id("prompt").focus()
    page.evaluate(
        """([data, name]) => {
          const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], name, { type: "image/png" }));
          const init = { clipboardData: transfer, bubbles: true, cancelable: true };
          const event = new ClipboardEvent("paste", init);
          document.querySelector("[data-testid=prompt]").dispatchEvent(event);
        }""",
        [base64.b64encode(data).decode(), name],
    )


def start_a_session(ui, page, text="say: ready"):
    """One command, so that Claude Code's init event (its models and slash commands) is on the page."""
    send(page, text)
    wait_state(turn(page))


def test_the_files_panel_opens_folders_and_shows_files_highlighted_or_as_binary(ui):
    make_files(ui.seed.project_path)
    ui.start_agent()
    page = ui.chat()
    open_files(page)

    expect(entry(page, "src")).to_have_attribute("aria-expanded", "false")
    expect(entry(page, "README.md")).to_be_visible()
    # Folders first, then files by name.
    paths = page.locator(".file-tree > .tree-list > li > [data-testid=file-entry]")
    expect(paths).to_have_count(3)
    assert [paths.nth(i).get_attribute("data-path") for i in range(3)] == ["src", "logo.png", "README.md"]

    entry(page, "src").click()
    expect(entry(page, "src")).to_have_attribute("aria-expanded", "true")
    entry(page, "src/app.py").click()
    content = page.get_by_test_id("file-content")
    expect(content).to_contain_text("print('hello', os.getcwd())")
    expect(page.get_by_test_id("file-path")).to_have_text("src/app.py")
    # Highlighted by the vendored highlight.js: keywords and strings are spans of its classes.
    expect(content.locator("code.language-py .hljs-keyword").first).to_have_text("import")
    expect(content.locator(".hljs-string").first).to_have_text("'hello'")

    entry(page, "logo.png").click()
    expect(page.get_by_test_id("file-binary")).to_contain_text("binary")
    expect(page.get_by_test_id("file-content")).to_have_count(0)

    # A file gone since the tree was listed: said plainly.
    os.remove(os.path.join(ui.seed.project_path, "README.md"))
    entry(page, "README.md").click()
    error = page.get_by_test_id("file-view").get_by_test_id("workspace-error")
    expect(error).to_have_attribute("data-code", "not_found")

    # Not a repository: the changes panel says so.
    page.get_by_test_id("changes-tab").click()
    expect(page.get_by_test_id("changes-empty")).to_contain_text("Not a git repository")
    # Closed by its button, or by Esc.
    page.get_by_test_id("close-workspace").click()
    expect(page.get_by_test_id("workspace")).to_be_hidden()
    open_files(page)
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("workspace")).to_be_hidden()


def test_an_offline_agent_is_said_and_the_tree_loads_when_it_connects(ui):
    make_files(ui.seed.project_path)
    page = ui.open_chat(ui.signed_in_page(), wait_agent=False)
    open_files(page)
    expect(page.get_by_test_id("workspace-error")).to_have_attribute("data-code", "agent_offline")
    ui.start_agent()
    expect(entry(page, "src")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(page.get_by_test_id("workspace-error")).to_have_count(0)


def test_the_changes_panel_follows_a_write_by_itself(ui):
    make_repo(ui.seed.project_path)
    ui.start_agent()
    page = ui.chat()
    open_changes(page)
    expect(page.get_by_test_id("changes-summary")).to_contain_text("No changes against HEAD")
    expect(page.get_by_test_id("changes-summary")).to_contain_text("main")

    send(page, "write: notes.md first line changed\nkept line\nadded line")
    page.get_by_test_id("allow").click(timeout=ANSWER_TIMEOUT_MS)
    wait_state(turn(page))

    # No click: the Write's result (and the command's end) asked for the changes again.
    change = page.locator("[data-testid=change-file][data-path='notes.md']")
    expect(change).to_have_attribute("data-status", "modified", timeout=ANSWER_TIMEOUT_MS)
    expect(change.get_by_test_id("change-status")).to_have_text("M")
    expect(change.get_by_test_id("change-counts")).to_have_text("+2−1")
    expect(page.get_by_test_id("changes-summary")).to_contain_text("1 file changed")
    change.locator("summary").click()
    diff = change.get_by_test_id("diff")
    expect(diff.locator(".diff-hunk")).to_have_count(1)
    expect(diff.locator(".diff-del")).to_have_text(["-first line"])
    expect(diff.locator(".diff-add")).to_have_text(["+first line changed", "+added line"])
    colours = diff.evaluate(
        """(node) => ["add", "del", "hunk"].map(
          (kind) => getComputedStyle(node.querySelector(".diff-" + kind)).backgroundColor)"""
    )
    assert len(set(colours)) == 3 and "rgba(0, 0, 0, 0)" not in colours, colours

    # An untracked file shows after the refresh button, and the open diff stays open.
    with open(os.path.join(ui.seed.project_path, "new.txt"), "w") as file:
        file.write("new\n")
    page.get_by_test_id("refresh-workspace").click()
    new = page.locator("[data-testid=change-file][data-path='new.txt']")
    expect(new).to_have_attribute("data-status", "untracked")
    expect(new.get_by_test_id("change-status")).to_have_text("U")
    expect(change.get_by_test_id("diff")).to_be_visible()


def test_files_attached_by_the_button_and_by_paste_reach_the_model_and_stay_with_the_turn(ui, standin):
    ui.start_agent()
    page = ui.chat()
    picked, pasted = png(5, 2), png(3, 4)
    page.get_by_test_id("attach-input").set_input_files(
        [
            {"name": "shot.png", "mimeType": "image/png", "buffer": picked},
            {"name": "todo.conf", "mimeType": "application/octet-stream", "buffer": "milk ✓\n".encode()},
            {"name": "extra.txt", "mimeType": "text/plain", "buffer": b"not sent"},
        ]
    )
    paste_image(page, pasted)
    chips = page.get_by_test_id("attachments").get_by_test_id("attachment")
    expect(chips).to_have_count(4)
    expect(chips.nth(0)).to_have_attribute("data-media-type", "image/png")
    expect(chips.nth(1)).to_have_attribute("data-media-type", "text/plain")  # no text type, but text
    expect(chips.nth(3)).to_have_attribute("data-name", "pasted-1.png")
    expect(page.get_by_test_id("attachments").get_by_test_id("attachment-thumb")).to_have_count(2)

    # Refused on the page, with the reason: a binary that is no image, and more than 5 MiB.
    page.get_by_test_id("attach-input").set_input_files(
        [
            {"name": "data.bin", "mimeType": "application/octet-stream", "buffer": b"\x00\x01\x02"},
            {"name": "huge.txt", "mimeType": "text/plain", "buffer": b"x" * (5 * 1024 * 1024)},
        ]
    )
    error = page.get_by_test_id("attachment-error")
    expect(error).to_contain_text("data.bin")
    expect(error).to_contain_text("huge.txt")
    expect(chips).to_have_count(4)
    chips.nth(2).get_by_role("button", name="Remove extra.txt").click()
    expect(chips).to_have_count(3)

    marker = f"say: seen {uuid.uuid4().hex[:8]}"
    send(page, marker)
    expect(chips).to_have_count(0)
    wait_state(turn(page))
    blocks = prompt_blocks(standin.request_for(marker))
    assert [base64.b64decode(b["source"]["data"]) for b in blocks if b["type"] == "image"] == [picked, pasted]
    assert any(b["type"] == "text" and "milk ✓" in b["text"] and "todo.conf" in b["text"] for b in blocks)

    # The turn shows them (images as thumbnails, text by name), and after a reload they come from the server.
    for _ in range(2):
        shown = turn(page).get_by_test_id("turn-attachment")
        expect(shown).to_have_count(3)
        expect(shown.nth(1)).to_contain_text("todo.conf")
        expect(shown.nth(1).get_by_test_id("attachment-thumb")).to_have_count(0)
        expect(shown.get_by_test_id("attachment-thumb")).to_have_count(2)
        page.reload()
    thumb = turn(page).get_by_test_id("turn-attachment").nth(2).get_by_test_id("attachment-thumb")
    expect(thumb).to_have_attribute("src", re.compile(r"^/api/commands/\w+/attachments/2$"))
    thumb.scroll_into_view_if_needed()
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth === 3", arg=thumb.element_handle(), timeout=30_000
    )


def test_the_chosen_model_reaches_the_model_and_stays_with_the_session(ui, standin):
    ui.start_agent()
    page = ui.chat()
    picker = page.get_by_test_id("model-picker")
    # Before any init event on this browser: Claude Code's aliases.
    expect(picker.locator("option")).to_have_count(4)
    assert picker.locator("option").evaluate_all("(o) => o.map((x) => x.value)") == [
        "default",
        "sonnet",
        "opus",
        "haiku",
    ]
    start_a_session(ui, page)
    # The init event's models: what this Claude Code offers, with their names.
    expect(picker.locator("option[value=haiku]")).to_have_count(1)
    picker.select_option("haiku")
    marker = f"say: with haiku {uuid.uuid4().hex[:8]}"
    send(page, marker)
    wait_state(turn(page))
    assert "haiku" in standin.request_for(marker)["model"]

    # The session keeps it: after a reload the picker shows it, and the next command uses it.
    session_id = session_id_of(page)
    page.reload()
    expect(page.get_by_test_id("model-picker")).to_have_value("haiku")
    again = f"say: still haiku {uuid.uuid4().hex[:8]}"
    send(page, again)
    wait_state(turn(page))
    assert "haiku" in standin.request_for(again)["model"]
    assert session_id_of(page) == session_id


def test_slash_commands_are_offered_filtered_and_picked_by_keyboard_or_touch(ui):
    ui.start_agent()
    page = ui.chat()
    start_a_session(ui, page)
    prompt = page.get_by_test_id("prompt")
    listing = page.get_by_test_id("slash-commands")
    prompt.fill("")
    prompt.press_sequentially("/")
    expect(listing).to_be_visible()
    expect(listing.locator("[data-name=compact]")).to_have_count(1)
    prompt.press_sequentially("compa")
    expect(listing.get_by_test_id("slash-command").first).to_have_attribute("data-name", "compact")
    prompt.press("Enter")
    expect(listing).to_be_hidden()
    expect(prompt).to_have_value("/compact ")
    expect(page.get_by_test_id("turn")).to_have_count(1)  # Enter picked; it did not send

    # Esc closes the list and leaves the text; Tab and arrows move and pick; a tap picks.
    prompt.fill("")
    prompt.press_sequentially("/c")
    expect(listing).to_be_visible()
    prompt.press("Escape")
    expect(listing).to_be_hidden()
    expect(prompt).to_have_value("/c")
    prompt.fill("")
    prompt.press_sequentially("/")
    second = listing.get_by_test_id("slash-command").nth(1).get_attribute("data-name")
    prompt.press("ArrowDown")
    expect(listing.get_by_test_id("slash-command").nth(1)).to_have_attribute("aria-selected", "true")
    prompt.press("Tab")
    expect(prompt).to_have_value(f"/{second} ")
    prompt.fill("")
    prompt.press_sequentially("/comp")
    listing.locator("[data-name=compact]").click()
    expect(prompt).to_have_value("/compact ")
    expect(prompt).to_be_focused()


def test_the_workspace_and_the_composer_fit_a_phone(ui):
    make_repo(ui.seed.project_path)
    with open(os.path.join(ui.seed.project_path, "notes.md"), "a") as file:
        file.write("a rather long line that a narrow screen has to scroll inside its box " * 4 + "\n")
    ui.start_agent()
    page = ui.chat(viewport=PHONE)
    start_a_session(ui, page)

    open_files(page)
    entry(page, "src").click()
    entry(page, "src/app.py").click()
    expect(page.get_by_test_id("file-content")).to_contain_text("def main")
    assert_fits_a_phone(page)

    page.get_by_test_id("changes-tab").click()
    change = page.locator("[data-testid=change-file][data-path='notes.md']")
    change.locator("summary").click()
    expect(change.get_by_test_id("diff")).to_be_visible()
    assert_fits_a_phone(page)
    page.get_by_test_id("close-workspace").click()
    expect(page.get_by_test_id("workspace")).to_be_hidden()

    page.get_by_test_id("attach-input").set_input_files(
        [
            {"name": f"screenshot-with-a-long-name-{n}.png", "mimeType": "image/png", "buffer": png(4, 4)}
            for n in range(3)
        ]
    )
    expect(page.get_by_test_id("attachment")).to_have_count(3)
    prompt = page.get_by_test_id("prompt")
    prompt.fill("")
    prompt.press_sequentially("/")
    expect(page.get_by_test_id("slash-commands")).to_be_visible()
    assert_fits_a_phone(page)


def test_plan_only_for_the_commands_sent_while_it_is_ticked(ui):
    ui.start_agent()
    page = ui.chat()
    plan = page.get_by_test_id("plan-toggle")
    plan.check()
    send(page, "say: a plan and nothing else")
    wait_state(turn(page))
    # Claude Code's own init event says the mode it ran in; the closing line shows it.
    expect(turn(page).get_by_test_id("command-summary")).to_contain_text("plan only")
    expect(plan).to_be_checked()  # it stays as set for the next command
    plan.uncheck()
    send(page, "say: back to the project's mode")
    wait_state(turn(page))
    expect(turn(page).get_by_test_id("command-summary")).not_to_contain_text("plan only")
