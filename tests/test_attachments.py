"""execute_command's attachments and model on the server: checked before anything is stored or sent,
stored with the command, served to who sees the session, sent (again) to the agent.

In process (test sockets); tests/integration/test_workspace.py follows them to Claude Code.
"""

import base64
import json
from types import SimpleNamespace

import pytest

from app import accounts, db
from app.models import Command, CommandAttachment, Project
from protocol.workspace import MAX_ATTACHMENT_BYTES
from tests.conftest import PASSWORD, make_user
from tests.sockets import assert_refused, chunk

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(40))
GIF = b"GIF89a" + bytes(20)
NOTES = "# Notes\nnaïve café ✓\n".encode()


def b64(data):
    return base64.b64encode(data).decode()


def attachment(name, media_type, data):
    return {"name": name, "mediaType": media_type, "data": b64(data)}


@pytest.fixture
def pair(seed, sockets):
    return SimpleNamespace(browser=sockets.browser(seed), agent=sockets.agent(seed.token))


def run(pair, seed, **fields):
    return pair.browser.call("execute_command", projectId=seed.project_id, **fields)


def counts(app):
    with app.app_context():
        return (
            db.session.scalar(db.select(db.func.count(Command.id))),
            db.session.scalar(db.select(db.func.count(CommandAttachment.id))),
        )


def test_attachments_and_model_reach_the_agent_and_are_kept_with_the_command(app, seed, pair):
    files = [attachment("screen.png", "image/png", PNG), attachment("notes.md", "text/markdown", NOTES)]
    reply = run(pair, seed, command="look at these", model="claude-test-1", attachments=files)
    assert reply["ok"], reply

    (sent,) = pair.agent.received("agent_command")
    assert sent["attachments"] == files
    assert sent["options"]["model"] == "claude-test-1"
    queued = pair.browser.wait_for("command_state", lambda m: m["state"] == "queued")[0]
    assert queued["model"] == "claude-test-1"
    assert queued["attachments"] == [
        {"index": 0, "name": "screen.png", "mediaType": "image/png", "size": len(PNG)},
        {"index": 1, "name": "notes.md", "mediaType": "text/markdown", "size": len(NOTES)},
    ]
    listed = pair.browser.http.get(f"/api/sessions/{reply['sessionId']}/commands").get_json()
    assert listed[0]["model"] == "claude-test-1" and listed[0]["attachments"] == queued["attachments"]
    (turn,) = pair.browser.http.get(f"/api/sessions/{reply['sessionId']}/turns").get_json()["turns"]
    assert turn["model"] == "claude-test-1" and turn["attachments"] == queued["attachments"]


def test_a_model_stays_with_the_session_until_another_is_named(seed, pair):
    first = run(pair, seed, command="one", model="opus")
    session = {"sessionId": first["sessionId"]}

    def finish_and_run(previous, **fields):
        assert pair.agent.call("command_response", chunk(previous, 1, "done", complete=True))["ok"]
        pair.agent.forget()
        reply = run(pair, seed, command="next", **session, **fields)
        assert reply["ok"], reply
        return reply, pair.agent.received("agent_command")[0]["options"].get("model")

    second, model = finish_and_run(first)
    assert model == "opus"
    third, model = finish_and_run(second, model="haiku")
    assert model == "haiku"
    _, model = finish_and_run(third)
    assert model == "haiku"
    other_session = run(pair, seed, command="new session")
    assert other_session["ok"] and "model" not in pair.agent.received("agent_command")[-1]["options"]


def test_a_command_sent_again_carries_its_attachments_again(app, seed, pair):
    files = [attachment("a.gif", "image/gif", GIF)]
    reply = run(pair, seed, command="again", clientMessageId="m-1", attachments=files)
    with app.app_context():  # as if the first dispatch was lost: still queued
        db.session.get(Command, reply["commandId"]).state = "queued"
        db.session.commit()
    pair.agent.forget()
    repeat = run(pair, seed, command="again", clientMessageId="m-1", attachments=files)
    assert repeat["repeated"] is True
    assert pair.agent.received("agent_command")[0]["attachments"] == files


def too_many():
    return [attachment(f"{n}.txt", "text/plain", b"x") for n in range(11)]


def too_big():
    half = MAX_ATTACHMENT_BYTES // 2
    return [
        attachment("a.txt", "text/plain", b"a" * half),
        attachment("b.txt", "text/plain", b"b" * (half + 1)),
    ]


@pytest.mark.parametrize(
    "files, code, field",
    [
        (too_many(), "too_large", None),
        (too_big(), "too_large", None),
        ([attachment("huge.png", "image/png", PNG + bytes(MAX_ATTACHMENT_BYTES))], "too_large", None),
        ([{"name": "x.png", "mediaType": "image/png", "data": "not base64!"}], "invalid_message", "data"),
        ([attachment("fake.png", "image/png", b"GIF89a not a png")], "invalid_message", "data"),
        ([attachment("latin1.txt", "text/plain", "caf\xe9".encode("latin-1"))], "invalid_message", "data"),
        ([attachment("x.svg", "image/svg+xml", b"<svg/>")], "invalid_message", "mediaType"),
        ([attachment("x.html", "text/html; charset=utf-8", b"<p>")], "invalid_message", "mediaType"),
        ([attachment("", "text/plain", b"x")], "invalid_message", "name"),
    ],
)
def test_attachments_over_the_bounds_or_not_what_they_say_are_refused_before_anything_happens(
    app, seed, pair, files, code, field
):
    before = counts(app)
    reply = run(pair, seed, command="with files", attachments=files)
    assert_refused(reply, code)
    if field:
        assert field in json.dumps(reply["error"]["fields"])
    assert pair.agent.received("agent_command") == []
    assert counts(app) == before


@pytest.mark.parametrize("model", ["-x", "--help", "a b", "x" * 129, "", "sonnet;rm"])
def test_a_model_name_claude_code_would_not_take_as_a_name_is_invalid(seed, pair, model):
    assert_refused(run(pair, seed, command="hi", model=model), "invalid_message")
    assert pair.agent.received("agent_command") == []


def test_a_command_with_five_mebibytes_of_attachments_fits_one_event_others_keep_the_smaller_bound(
    app, seed, pair
):
    files = [attachment("big.txt", "text/plain", b"z" * MAX_ATTACHMENT_BYTES)]
    assert len(json.dumps(files)) > app.config["MAX_MESSAGE_BYTES"] * 6
    reply = run(pair, seed, command="big", attachments=files)
    assert reply["ok"], reply
    assert len(pair.agent.received("agent_command")[0]["attachments"][0]["data"]) == len(files[0]["data"])
    padded = {"sessionId": reply["sessionId"], "afterSeq": 0, "padding": "p" * 2_000_000}
    assert_refused(pair.browser.call("subscribe", **padded), "too_large")


# -- serving them ------------------------------------------------------------------------------------


@pytest.fixture
def stored(app, seed, pair, sockets):
    """A command with an image and a text file; Victor (viewer) and Sam (stranger) signed in."""
    files = [
        attachment("screen.png", "image/png", PNG),
        attachment("page.html", "text/html", b"<script>x</script>"),
    ]
    reply = run(pair, seed, command="look", attachments=files)
    with app.app_context():
        for name in ("victor", "sam"):
            make_user(name)
        accounts.share_project(db.session.get(Project, seed.project_id), "victor", "viewer")
    people = {"owner": pair.browser}
    for who, name in (("viewer", "victor"), ("stranger", "sam")):
        people[who] = sockets.browser(SimpleNamespace(username=name, password=PASSWORD))
    return SimpleNamespace(command_id=reply["commandId"], people=people)


def test_an_image_is_served_as_itself_to_who_sees_the_session(stored):
    for who in ("owner", "viewer"):
        response = stored.people[who].http.get(f"/api/commands/{stored.command_id}/attachments/0")
        assert response.status_code == 200 and response.data == PNG
        assert response.mimetype == "image/png"
        assert "sandbox" in response.headers["Content-Security-Policy"]
        assert response.headers["Content-Disposition"] == "inline; filename*=UTF-8''screen.png"


def test_a_text_attachment_is_served_as_plain_text_whatever_type_it_claimed(stored):
    response = stored.people["owner"].http.get(f"/api/commands/{stored.command_id}/attachments/1")
    assert response.status_code == 200 and response.data == b"<script>x</script>"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "who, url_of",
    [
        ("stranger", lambda c: f"/api/commands/{c}/attachments/0"),
        ("owner", lambda c: f"/api/commands/{c}/attachments/2"),
        ("owner", lambda c: "/api/commands/nope/attachments/0"),
    ],
)
def test_attachments_of_sessions_one_may_not_see_or_that_do_not_exist_are_404(stored, who, url_of):
    assert stored.people[who].http.get(url_of(stored.command_id)).status_code == 404
