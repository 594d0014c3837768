"""HTTP hardening and error pages: CSP, framing, caching, HSTS, CSRF failures, JSON errors for the API.

docs/security.md lists every defence and where it lives.
"""

from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

# Scripts only from our own origin (no inline script), sockets to our own origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)


def init_app(app):
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


def _wants_json():
    return request.path.startswith("/api/")


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
