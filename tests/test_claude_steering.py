"""Attachments, the model and what Claude Code offers, through the real Claude Code and the stand-in model."""

import base64
import os
import struct
import uuid
import zlib

import pytest

from agent_client.standin import prompt_blocks
from tests.claude_fixtures import make_request, run

pytestmark = pytest.mark.integration


def png(width, height, noise=False):
    """A real PNG image (RGB): a gradient, or random pixels that do not compress."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def row(y):
        return os.urandom(width * 3) if noise else bytes((x * 7 + y) % 256 for x in range(width * 3))

    rows = b"".join(b"\x00" + row(y) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def b64(data):
    return base64.b64encode(data).decode()


def test_an_image_and_a_text_file_reach_the_model_as_content_blocks(manager, sink, standin, tmp_path):
    image = png(6, 4)
    notes = 'line one\nnaïve café ✓ <tag> & "quotes"\n'
    marker = f"say: got them {uuid.uuid4().hex[:8]}"
    attachments = [
        {"name": "shot.png", "mediaType": "image/png", "data": b64(image)},
        {"name": 'my "notes".md', "mediaType": "text/markdown", "data": b64(notes.encode())},
    ]
    request = make_request(tmp_path, marker, attachments=attachments)

    assert run(manager, sink, request) is None
    assert sink.text_of(request.command_id) == marker[len("say: ") :]  # the prompt was found and answered

    blocks = prompt_blocks(standin.request_for(marker))
    images = [block for block in blocks if block["type"] == "image"]
    assert [(b["source"]["media_type"], base64.b64decode(b["source"]["data"])) for b in images] == [
        ("image/png", image)
    ]
    texts = [block["text"] for block in blocks if block["type"] == "text"]
    attached = next(text for text in texts if text.startswith("<attached_file"))
    assert attached == (
        '<attached_file name="my &quot;notes&quot;.md" media_type="text/markdown">\n'
        + notes
        + "\n</attached_file>"
    )
    prompt = next(text for text in texts if marker in text)
    assert texts.index(attached) < texts.index(prompt)  # files first, the prompt after them


def test_the_model_asked_for_is_the_model_claude_code_asks_and_it_changes_on_a_live_session(
    manager, sink, standin, tmp_path
):
    first = make_request(tmp_path, f"say: first {uuid.uuid4().hex[:8]}", model="claude-tether-alpha")
    assert run(manager, sink, first) is None
    assert standin.request_for(first.prompt)["model"] == "claude-tether-alpha"
    assert sink.init_event(first.command_id)["model"] == "claude-tether-alpha"

    second = make_request(tmp_path, f"say: second {uuid.uuid4().hex[:8]}", model="claude-tether-beta")
    assert run(manager, sink, second) is None  # same session: its live Claude Code is told the new model
    assert standin.request_for(second.prompt)["model"] == "claude-tether-beta"


def test_the_init_event_offers_the_slash_commands_and_models_of_claude_code(manager, sink, tmp_path):
    request = make_request(tmp_path, "say: what do you offer")
    assert run(manager, sink, request) is None
    init = sink.init_event(request.command_id)

    assert "compact" in init["slash_commands"] and all(isinstance(n, str) for n in init["slash_commands"])
    names = {command["name"] for command in init["commands"]}
    assert set(init["slash_commands"]) & names
    assert all(set(command) == {"name", "description", "argumentHint"} for command in init["commands"])
    assert all(len(command["description"]) <= 160 for command in init["commands"])
    values = [model["value"] for model in init["models"]]
    assert "sonnet" in values and all(
        set(m) == {"value", "displayName", "description"} for m in init["models"]
    )
