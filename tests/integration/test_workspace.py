"""Files, changes, attachments and the model through the whole system: browser -> server -> agent.

Real server and agent processes, real directories and git repositories in temp
folders, Claude Code against the stand-in model.
"""

import base64
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from agent_client.standin import prompt_blocks
from app import accounts, db
from app.models import Project
from protocol.schemas import load_answer
from protocol.workspace import MAX_ATTACHMENT_BYTES, MAX_TEXT_BYTES
from tests.conftest import PASSWORD, make_seed
from tests.harness import AgentProcess, Process, WebClient, free_port, wait_until
from tests.test_claude_steering import png
from tests.test_git_changes import git


def ask(browser, event, project_id, path=None, timeout=30):
    fields = {"projectId": project_id} if path is None else {"projectId": project_id, "path": path}
    return browser.call(event, fields, timeout=timeout)


def answered(browser, event, project_id, path=None):
    reply = ask(browser, event, project_id, path)
    assert reply["ok"], reply
    return load_answer(event, reply)


def refused(browser, event, project_id, path=None):
    reply = ask(browser, event, project_id, path)
    assert reply["ok"] is False, reply
    return reply["error"]["code"]


@pytest.fixture
def project(live):
    """Alice's project directory with files, and her agent online; `outside` is next to the agent's root."""
    seed, (browser,) = live.ready()
    root = seed.project_path
    os.makedirs(os.path.join(root, "src"))
    with open(os.path.join(root, "src", "app.py"), "w") as file:
        file.write("print('hello')\n")
    with open(os.path.join(root, "README.md"), "w") as file:
        file.write("# Project\n")
    with open(os.path.join(root, "logo.png"), "wb") as file:
        file.write(png(3, 3))
    outside = os.path.join(os.path.dirname(live.workdir), f"outside-{uuid.uuid4().hex[:6]}")
    os.makedirs(outside)
    with open(os.path.join(outside, "secret.txt"), "w") as file:
        file.write("not yours")
    return seed, browser, root, outside


def test_a_browser_lists_and_reads_the_projects_files_from_the_agents_machine(project):
    seed, browser, root, _ = project
    with open(os.path.join(root, "huge.log"), "wb") as file:
        file.write(b"a log line\n" * 200_000)  # 2.2 MB of text, then a hole up to 50 MB
        file.truncate(50 * 1024 * 1024)

    listing = answered(browser, "list_files", seed.project_id, "")
    assert [(e["kind"], e["name"]) for e in listing["entries"]] == [
        ("dir", "src"),
        ("file", "huge.log"),
        ("file", "logo.png"),
        ("file", "README.md"),
    ]
    assert listing["entries"][1]["size"] == 50 * 1024 * 1024
    assert answered(browser, "list_files", seed.project_id, "src")["entries"][0]["name"] == "app.py"
    text = answered(browser, "read_file", seed.project_id, "src/app.py")
    assert (text["content"], text["binary"], text["truncated"]) == ("print('hello')\n", False, False)
    image = answered(browser, "read_file", seed.project_id, "logo.png")
    assert image["binary"] is True and image["content"] == ""
    huge = answered(browser, "read_file", seed.project_id, "huge.log")
    assert huge["truncated"] is True and huge["binary"] is False and huge["size"] == 50 * 1024 * 1024
    assert huge["content"] == ("a log line\n" * 200_000)[:MAX_TEXT_BYTES]


def test_a_file_of_one_mebibyte_of_text_arrives_whole(project):
    seed, browser, root, _ = project
    text = ('é"\\\t' * 4 + "\n") * (MAX_TEXT_BYTES // 30)  # characters JSON escapes, two bytes of UTF-8
    with open(os.path.join(root, "wide.txt"), "w", encoding="utf-8") as file:
        file.write(text)
    answer = answered(browser, "read_file", seed.project_id, "wide.txt")
    assert answer["content"] == text and answer["truncated"] is False


def test_every_way_out_of_the_project_is_refused(project, live):
    seed, browser, root, outside = project
    os.symlink(os.path.join(outside, "secret.txt"), os.path.join(root, "to-secret"))
    os.symlink(outside, os.path.join(root, "to-outside"))
    os.symlink(os.path.dirname(root), os.path.join(root, "to-root"))  # the agent's root, above the project
    for path in [
        "../",
        "../alice-laptop/README.md",
        "/etc/passwd",
        "src/../../x",
        "a\x00b",
        "to-secret",  # a symlink to a file outside
        "to-outside",  # a symlink to a directory outside
        "to-outside/secret.txt",
        "to-root",
    ]:
        for event in ("read_file", "list_files"):
            assert refused(browser, event, seed.project_id, path) == "forbidden", (event, path)
    assert refused(browser, "read_file", seed.project_id, "n" * 255 + "/" + "m" * 300) == "not_found"
    assert refused(browser, "list_files", seed.project_id, "missing") == "not_found"


def test_a_project_directory_outside_the_agents_roots_is_refused_by_the_agent(project, live):
    seed, browser, _, outside = project
    with live.app.app_context():
        user, agent = accounts.find_user(seed.username), db.session.get(Project, seed.project_id).agent
        elsewhere = accounts.create_project(user, agent, "elsewhere", outside)
        elsewhere_id = elsewhere.id
    for event, path in (("list_files", ""), ("read_file", "secret.txt"), ("git_changes", None)):
        assert refused(browser, event, elsewhere_id, path) == "forbidden"


def test_another_users_project_is_not_found_and_a_viewer_is_forbidden(project, live):
    seed, _, _, _ = project
    bob = live.seed("bob", "bobs-laptop")
    live.agent(bob)
    bob_browser = live.browser(bob)
    bob_browser.agent_online(bob.agent_id)
    assert refused(bob_browser, "read_file", seed.project_id, "README.md") == "not_found"
    with live.app.app_context():
        accounts.share_project(db.session.get(Project, seed.project_id), "bob", "viewer")
    assert refused(bob_browser, "read_file", seed.project_id, "README.md") == "forbidden"
    assert refused(bob_browser, "git_changes", seed.project_id) == "forbidden"
    assert answered(bob_browser, "list_files", bob.project_id, "")["entries"] == []


def test_git_changes_show_the_working_tree_against_head(project):
    seed, browser, root, _ = project
    assert answered(browser, "git_changes", seed.project_id) == {"ok": True, "isRepo": False, "files": []}
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    with open(os.path.join(root, "src", "app.py"), "a") as file:
        file.write("print('more')\n")
    with open(os.path.join(root, "NEW.md"), "w") as file:
        file.write("new\n")

    answer = answered(browser, "git_changes", seed.project_id)

    assert (answer["isRepo"], answer["branch"], answer["truncated"]) == (True, "main", False)
    assert answer["files"] == [
        {"path": "NEW.md", "status": "untracked", "additions": 1, "deletions": 0},
        {"path": "src/app.py", "status": "modified", "additions": 1, "deletions": 0},
    ]
    assert "+print('more')\n" in answer["diff"] and "+++ b/NEW.md\n" in answer["diff"]


def test_an_agent_that_dies_mid_request_leaves_the_browser_an_error_not_a_hang(live, tmp_path):
    seed = live.seed()
    browser = live.browser(seed)
    marker = str(uuid.uuid4().int)[:8]  # digits: `sleep 59.<marker>` is a valid duration
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(f"#!/bin/sh\nexec sleep 59.{marker}\n")  # a git that never answers
    (bin_dir / "git").chmod(0o755)
    live.claude_env = {**live.claude_env, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    agent = live.agent(seed)
    browser.agent_online(seed.agent_id)
    replies = []
    asking = threading.Thread(target=lambda: replies.append(ask(browser, "git_changes", seed.project_id)))
    asking.start()
    try:
        wait_until(lambda: pids_of(f"sleep 59.{marker}"), message="the agent running git")
        agent.kill()
        asking.join(30)
    finally:
        for pid in pids_of(f"sleep 59.{marker}"):
            os.kill(pid, signal.SIGKILL)
    assert replies and replies[0]["ok"] is False, replies
    assert replies[0]["error"]["code"] == "agent_offline"


def pids_of(pattern):
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def test_a_running_command_keeps_streaming_while_files_are_read(project):
    seed, browser, _, _ = project
    reply = browser.run(seed.project_id, "slow: 150 20")
    results_at_each_read = []
    while not browser.session_results_of(reply["commandId"]) or all(
        r["status"] == "streaming" for r in browser.session_results_of(reply["commandId"])
    ):
        for event, path in (("list_files", "src"), ("read_file", "README.md"), ("git_changes", None)):
            answered(browser, event, seed.project_id, path)
        results_at_each_read.append(len(browser.session_results_of(reply["commandId"])))
        time.sleep(0.2)  # three events a round: stay under the browser's 20 events a second
    final = browser.wait_final(reply["commandId"])

    assert final["status"] == "complete"
    assert browser.text_of(reply["commandId"]) == " ".join(f"w{n}" for n in range(150))
    streamed_between_reads = [
        b - a for a, b in zip(results_at_each_read, results_at_each_read[1:], strict=False)
    ]
    assert len(results_at_each_read) >= 3 and sum(1 for n in streamed_between_reads if n > 0) >= 2


# A one-pixel GIF.
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def b64(data):
    return base64.b64encode(data).decode()


def test_attachments_and_the_model_reach_the_model_and_stay_with_the_session(project, live, standin):
    seed, browser, _, _ = project
    image, notes = png(5, 2), "# Notes\nremember the milk ✓\n"
    marker = f"say: seen {uuid.uuid4().hex[:8]}"
    files = [
        {"name": "shot.png", "mediaType": "image/png", "data": b64(image)},
        {"name": "notes.md", "mediaType": "text/markdown", "data": b64(notes.encode())},
    ]
    first = browser.run(seed.project_id, marker, model="claude-tether-live", attachments=files)
    assert browser.wait_final(first["commandId"])["status"] == "complete"

    body = standin.request_for(marker)
    assert body["model"] == "claude-tether-live"
    blocks = prompt_blocks(body)
    assert [base64.b64decode(b["source"]["data"]) for b in blocks if b["type"] == "image"] == [image]
    assert any(b["type"] == "text" and notes in b["text"] and "notes.md" in b["text"] for b in blocks)
    served = browser.http.get(f"{browser.url}/api/commands/{first['commandId']}/attachments/0")
    assert served.status_code == 200 and served.content == image

    follow_up = f"say: again {uuid.uuid4().hex[:8]}"
    second = browser.run(seed.project_id, follow_up, session_id=first["sessionId"])
    assert browser.wait_final(second["commandId"])["status"] == "complete"
    assert standin.request_for(follow_up)["model"] == "claude-tether-live"  # the session's model


def test_five_mebibytes_of_attachments_go_through_a_real_socket(project, standin):
    """The largest command the contract allows: over the browser's WebSocket, to the agent, to Claude Code."""
    seed, browser, _, _ = project
    marker = f"say: seen them all {uuid.uuid4().hex[:8]}"
    images = [png(590, 590, noise=True) for _ in range(5)]  # about 1 MiB each, incompressible
    assert MAX_ATTACHMENT_BYTES - 100_000 < sum(map(len, images)) <= MAX_ATTACHMENT_BYTES
    files = [
        {"name": f"{n}.png", "mediaType": "image/png", "data": b64(image)} for n, image in enumerate(images)
    ]
    reply = browser.run(seed.project_id, marker, attachments=files)
    final = browser.wait_final(reply["commandId"], timeout=120)
    assert final["status"] == "complete", final.get("error")
    blocks = prompt_blocks(standin.request_for(marker))
    # Claude Code re-encodes images this large (as JPEG) before they reach the model.
    assert [b["source"]["media_type"].startswith("image/") for b in blocks if b["type"] == "image"] == [
        True
    ] * 5


def test_too_many_or_too_large_attachments_are_refused_before_the_agent(project, standin):
    seed, browser, _, _ = project
    marker = f"say: never {uuid.uuid4().hex[:8]}"
    eleven = [{"name": f"{n}.txt", "mediaType": "text/plain", "data": b64(b"x")} for n in range(11)]
    over = [{"name": "big.txt", "mediaType": "text/plain", "data": b64(b"y" * (MAX_ATTACHMENT_BYTES + 1))}]
    for files in (eleven, over):
        reply = browser.call(
            "execute_command", {"projectId": seed.project_id, "command": marker, "attachments": files}
        )
        assert reply["ok"] is False and reply["error"]["code"] == "too_large", reply
    assert (
        browser.call("subscribe", {"sessionId": "none", "afterSeq": 0})["error"]["code"] == "not_found"
    )  # still on
    assert standin.request_for(marker) is None
    with browser.cond:
        assert not [e for e in browser.events if e[0] == "command_state"]


def test_a_second_browser_sees_the_attachments_after_a_reload(project, live):
    seed, browser, _, _ = project
    files = [{"name": "pic.gif", "mediaType": "image/gif", "data": b64(GIF)}]
    reply = browser.run(seed.project_id, "say: with a gif", attachments=files)
    browser.wait_final(reply["commandId"])
    other = WebClient(live.url, seed.username, PASSWORD)
    listed = other.http.get(f"{live.url}/api/sessions/{reply['sessionId']}/commands").json()
    assert listed[0]["attachments"] == [
        {"index": 0, "name": "pic.gif", "mediaType": "image/gif", "size": len(GIF)}
    ]


@pytest.mark.integration  # runs `flask run` itself
def test_the_development_server_waits_for_the_agent_in_threading_mode(
    app, database_url, tmp_path, claude_env
):
    """`flask run` (threads, simple-websocket): the browser's handler waits on a thread's event."""
    seed = make_seed(app, str(tmp_path / "project"))
    os.makedirs(seed.project_path)
    with open(os.path.join(seed.project_path, "hello.txt"), "w") as file:
        file.write("from a thread\n")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TETHER_")}
    env.update(TETHER_DATABASE_URL=database_url, TETHER_INSTANCE_PATH=str(tmp_path / "instance"))
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    args = [flask, "--app", "wsgi", "run", "--host", "127.0.0.1", "--port", str(port)]
    server = Process(args, env, str(tmp_path / "flask-run.log")).start()
    url = f"http://127.0.0.1:{port}"
    agent = browser = None
    try:
        wait_until(lambda: _serving(url), message=f"flask run on {url}")
        agent = AgentProcess(url, seed.token, str(tmp_path), claude_env).start()
        browser = WebClient(url, seed.username, PASSWORD).connect()
        browser.agent_online(seed.agent_id)
        assert answered(browser, "read_file", seed.project_id, "hello.txt")["content"] == "from a thread\n"
        assert refused(browser, "read_file", seed.project_id, "../x") == "forbidden"
    finally:
        if browser:
            browser.close()
        for process in (agent, server):
            if process:
                process.stop()


def _serving(url):
    try:
        return requests.get(url + "/login", timeout=1).status_code == 200
    except requests.RequestException:
        return False
