"""What steers Claude Code beyond a prompt's text: attachments, and what it offers (slash commands, models).

A prompt without attachments is sent as its text. With attachments it is one user
message of content blocks: each image as an image block (base64, its media
type), each text file as a text block that names the file, then the prompt's own
text last (what the model answers, and what the stand-in model reads as the script).
Claude Code itself may re-encode a large image (a JPEG of a few hundred KB) and
keeps a copy of each image in its temporary directory on this machine.
"""

import base64
import binascii
from html import escape
from typing import Any

from protocol.workspace import IMAGE_MEDIA_TYPES


def content_blocks(prompt, attachments):
    """The content blocks of a prompt with its attachments ([{name, mediaType, data}])."""
    blocks = [_block(attachment) for attachment in attachments]
    blocks.append({"type": "text", "text": prompt})
    return blocks


def _block(attachment):
    media_type = attachment["mediaType"]
    if media_type in IMAGE_MEDIA_TYPES:
        source = {"type": "base64", "media_type": media_type, "data": attachment["data"]}
        return {"type": "image", "source": source}
    return {"type": "text", "text": attached_text(attachment["name"], media_type, _text(attachment["data"]))}


def attached_text(name, media_type, text):
    """A text file as the model reads it: its content inside a tag that names it."""
    return (
        f'<attached_file name="{escape(name)}" media_type="{escape(media_type)}">\n{text}\n</attached_file>'
    )


def _text(data):
    try:
        return base64.b64decode(data, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return "(this attachment could not be decoded)"


def prompt_input(prompt, attachments):
    """What ClaudeSDKClient.query takes: the text alone, or one user message of content blocks."""
    if not attachments:
        return prompt
    message = {
        "type": "user",
        "message": {"role": "user", "content": content_blocks(prompt, attachments)},
        "parent_tool_use_id": None,
    }

    async def one_message():
        yield message

    return one_message()


OFFERED_DESCRIPTION_CHARS = 160  # of each slash command's and model's description


def offered(info: dict[str, Any] | None) -> dict[str, list]:
    """The slash commands and models Claude Code offers (its initialize answer), for the init event.

    ``commands``: ``[{"name", "description", "argumentHint"}]``; ``models``:
    ``[{"value", "displayName", "description"}]`` (``value`` is what a command's
    ``model`` takes). Descriptions are cut: the init event is stored with every command.
    """
    if not isinstance(info, dict):
        return {}
    commands = [
        {
            "name": c["name"],
            "description": _brief(c.get("description")),
            "argumentHint": c.get("argumentHint") or "",
        }
        for c in info.get("commands") or []
        if isinstance(c, dict) and isinstance(c.get("name"), str)
    ]
    models = [
        {
            "value": m["value"],
            "displayName": m.get("displayName") or m["value"],
            "description": _brief(m.get("description")),
        }
        for m in info.get("models") or []
        if isinstance(m, dict) and isinstance(m.get("value"), str)
    ]
    return {"commands": commands, "models": models}


def _brief(text: Any) -> str:
    text = str(text or "")
    return text if len(text) <= OFFERED_DESCRIPTION_CHARS else text[: OFFERED_DESCRIPTION_CHARS - 1] + "…"
