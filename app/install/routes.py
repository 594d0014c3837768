"""`GET /agent/install`, the wheel itself, and `POST /agent/pair` (docs/protocol.md).

None of them needs a login: pip fetches the wheel with no cookie, and an agent proves
itself with a pairing code, not a session. The pairing endpoint is exempt from CSRF
for the same reason: it is called by a program, never by a browser form, and a forged
cross-site request would need the code anyway.
"""

import logging

from flask import abort, current_app, jsonify, request

from app import agent_dist, csrf, pairing
from app.install import bp

log = logging.getLogger("tether.pairing")
# A pairing request is {"code": "ABCDE-FGHJK"}: a few dozen bytes.
MAX_PAIR_BODY = 4096


def _error(code, message, status):
    return jsonify({"ok": False, "error": {"code": code, "message": message}}), status


@bp.route("/agent/install")
def install():
    """The agent's version and the path of its wheel on this server."""
    wheel = agent_dist.current(current_app)
    return jsonify({"version": wheel.version, "wheel": wheel.path, "sha256": wheel.sha256})


@bp.route("/agent/<filename>")
def wheel(filename):
    """The agent's wheel: only the current one, under its exact name."""
    wheel = agent_dist.current(current_app)
    if filename != wheel.filename:
        abort(404)
    response = current_app.response_class(wheel.data, mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="{wheel.filename}"'
    # The name carries the version, and the same version is always the same bytes.
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.set_etag(wheel.sha256)
    return response.make_conditional(request)


@bp.route("/agent/pair", methods=["POST"])
@csrf.exempt
def pair():
    """Trade a pairing code for the agent's token (rate-limited per address)."""
    request.max_content_length = MAX_PAIR_BODY
    body = request.get_json(silent=True)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str):
        return _error("invalid_message", 'send {"code": CODE} as JSON', 400)
    try:
        agent, token = pairing.trade(code, request.remote_addr)
    except pairing.PairingRefused as refusal:
        log.warning("pairing refused for %s: %s", request.remote_addr, refusal.message)
        return _error(refusal.code, refusal.message, refusal.status)
    log.info("agent %s paired from %s", agent.name, request.remote_addr)
    return jsonify({"ok": True, "token": token, "agentId": agent.id, "agentName": agent.name})
