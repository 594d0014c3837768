"""Files sent with a command: checked, stored with it, sent to its agent, served to who sees its session.

The schema has already counted them and summed their sizes (`too_large` over the
contract's bounds, protocol/workspace.py). Here each is decoded strictly: its
base64, an image's first bytes against its media type (Claude's API refuses an
image whose bytes are not what it says), a text file's UTF-8. A failure is
`invalid_message` naming the attachment, before anything is stored or sent.

They are stored in `command_attachments` with the command, so a reload or another
browser shows them (`command_state` `queued` and GET /api/sessions/<id>/commands
describe them; GET /api/commands/<id>/attachments/<index> serves the bytes), and
a command sent again to its agent carries them again.
"""

import base64
import binascii
from dataclasses import dataclass

from app import db
from app.models import CommandAttachment
from protocol import ProtocolError
from protocol.workspace import IMAGE_MEDIA_TYPES, MAX_ATTACHMENT_BYTES

# The first bytes of each image type.
_SIGNATURES = {
    "image/png": lambda data: data.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": lambda data: data.startswith(b"\xff\xd8\xff"),
    "image/gif": lambda data: data.startswith((b"GIF87a", b"GIF89a")),
    "image/webp": lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP",
}


@dataclass
class Attachment:
    name: str
    media_type: str
    data: bytes


def decoded(message):
    """The attachments of an execute_command message, decoded and checked ([] without any)."""
    found = []
    for index, item in enumerate(message.get("attachments") or []):
        found.append(_decoded(index, item))
    total = sum(len(attachment.data) for attachment in found)
    if total > MAX_ATTACHMENT_BYTES:
        raise ProtocolError("too_large", f"attachments of {total} bytes; at most {MAX_ATTACHMENT_BYTES}")
    return found


def _decoded(index, item):
    try:
        data = base64.b64decode(item["data"], validate=True)
    except (binascii.Error, ValueError):
        _refuse(index, "data", "Not valid base64.")
    media_type = item["mediaType"]
    if media_type in IMAGE_MEDIA_TYPES:
        if not _SIGNATURES[media_type](data):
            _refuse(index, "data", f"Not a {media_type} image.")
    else:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            _refuse(index, "data", "Not UTF-8 text: send it as an image or not at all.")
    return Attachment(item["name"], media_type, data)


def _refuse(index, field, text):
    raise ProtocolError(
        "invalid_message", "invalid execute_command message", fields={"attachments": {index: {field: [text]}}}
    )


def store(command_id, attachments):
    """Add the attachments' rows to the session (committed with the command); returns their descriptions."""
    rows = [
        CommandAttachment(
            command_id=command_id,
            position=index,
            name=attachment.name,
            media_type=attachment.media_type,
            size=len(attachment.data),
            data=attachment.data,
        )
        for index, attachment in enumerate(attachments)
    ]
    db.session.add_all(rows)
    return [describe(row) for row in rows]


def describe(row):
    """What browsers learn of an attachment (the bytes are at its URL)."""
    return {"index": row.position, "name": row.name, "mediaType": row.media_type, "size": row.size}


def described(command_ids):
    """{command id: [description, ...]} for the commands that have attachments (one query)."""
    if not command_ids:
        return {}
    rows = db.session.execute(
        db.select(
            CommandAttachment.command_id,
            CommandAttachment.position,
            CommandAttachment.name,
            CommandAttachment.media_type,
            CommandAttachment.size,
        )
        .filter(CommandAttachment.command_id.in_(command_ids))
        .order_by(CommandAttachment.command_id, CommandAttachment.position)
    ).all()
    found = {}
    for row in rows:
        found.setdefault(row.command_id, []).append(describe(row))
    return found


def for_agent(command_id):
    """The command's attachments as agent_command carries them ([{name, mediaType, data}]), or None."""
    rows = db.session.scalars(
        db.select(CommandAttachment).filter_by(command_id=command_id).order_by(CommandAttachment.position)
    ).all()
    return [
        {"name": row.name, "mediaType": row.media_type, "data": base64.b64encode(row.data).decode("ascii")}
        for row in rows
    ] or None


def one(command_id, index):
    """A stored attachment, or None."""
    return db.session.scalar(db.select(CommandAttachment).filter_by(command_id=command_id, position=index))
