"""HTTP hardening and error pages: CSP, framing, caching, HSTS, CSRF failures, JSON errors for the API.

docs/security.md lists every defence and where it lives.
"""

import io

from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

# Scripts only from our own origin (no inline script), sockets to our own origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)


# What a client may send in a long-polling POST (Engine.IO 4): close, pong, message, binary message.
CLIENT_POLL_PACKETS = frozenset("134b")


def init_app(app):
    # Socket.IO's own requests never reach Flask: app/entry.py checks them (polling_post_refusal, below).
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if response.mimetype in ("text/html", "application/json"):
        # Pages and API answers are per user (the dashboard shows a new token once):
        # no browser or proxy cache keeps them.
        response.headers.setdefault("Cache-Control", "no-store")
    if request.is_secure:
        # Behind TLS (directly, or a proxy with TETHER_PROXY_COUNT): HTTPS from now on.
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def polling_post_refusal(environ, limit):
    """How to answer an Engine.IO long-polling POST before Engine.IO sees it; None lets it through.

    python-engineio (4.x) answers a POST that is too large or holds a packet a
    client may not send by closing the session and waiting for its send queue
    to drain, which only the client's next poll does: without one the request
    hangs for ever, holding its connection. Opening a polling session needs no
    login, so anybody could pile up such connections. app/entry.py asks this of
    every POST to the Socket.IO path.
    """
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return "400 Bad Request"
    if length > limit:
        return "413 Payload Too Large"
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    if any(packet[:1].decode("latin-1") not in CLIENT_POLL_PACKETS for packet in body.split(b"\x1e")):
        return "400 Bad Request"
    return None


def _wants_json():
    # /agent/ is for programs: pip and the agent's pairing.
    return request.path.startswith(("/api/", "/agent/"))


def _csrf_error(error):
    """A form posted without a valid CSRF token: show the form again with the reason."""
    from app.auth.forms import LoginForm

    message = "The form expired or came from another site. Please try again."
    if request.endpoint == "auth.login":
        return render_template("login.html", form=LoginForm(), error=message), 400
    return render_template("error.html", code=400, message=message), 400


def _http_error(error):
    if _wants_json():
        return jsonify({"ok": False, "error": {"code": error.name, "message": error.description}}), (
            error.code
        )
    return render_template("error.html", code=error.code, message=error.description), error.code
