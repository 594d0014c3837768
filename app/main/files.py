"""A command's attachments over HTTP, for the pages: GET /api/commands/<id>/attachments/<index>."""

from urllib.parse import quote

from flask import Response, abort
from flask_login import login_required

from app import attachments, db
from app.main import bp
from app.main.routes import session_or_abort
from app.models import Command
from protocol.workspace import IMAGE_MEDIA_TYPES

# Served bytes are the user's own upload: never run as a page of ours, whatever they hold.
SANDBOX = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


@bp.route("/api/commands/<command_id>/attachments/<int:index>")
@login_required
def command_attachment(command_id, index):
    """One attachment of a command, to whoever may see its session (404 otherwise)."""
    command = db.session.get(Command, command_id)
    if command is None:
        abort(404)
    session_or_abort(command.session_id)
    found = attachments.one(command.id, index)
    if found is None:
        abort(404)
    image = found.media_type in IMAGE_MEDIA_TYPES
    response = Response(found.data, mimetype=found.media_type if image else "text/plain")
    if not image:
        response.charset = "utf-8"  # any text type is shown as plain text, never as HTML
    response.headers["Content-Security-Policy"] = SANDBOX
    response.headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(found.name, safe='')}"
    response.headers["Cache-Control"] = "private, max-age=3600"  # a command's attachments never change
    return response
