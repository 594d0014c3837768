"""Socket.IO namespaces: /web for browsers, /agent for agents."""

import functools
import json
import logging
import re

from flask import current_app
from flask_socketio import Namespace

from app import db
from app.limits import TokenBucket
from app.storage import ChunkWriter
from protocol import ProtocolError, error_reply, load

log = logging.getLogger("tether.sockets")
RESERVED_EVENTS = ("connect", "disconnect")
# In JSON's ASCII form, a NUL or a UTF-16 surrogate (lone, or half of a pair) shows as one of these.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|d[89a-f])")


def register_namespaces(socketio, app):
    from app.sockets.agent import AgentNamespace
    from app.sockets.web import WebNamespace

    app.extensions["tether_running"] = True
    app.extensions["tether_writer"] = ChunkWriter(app, socketio)
    app.extensions["tether_agents"] = AgentNamespace()
    socketio.on_namespace(WebNamespace())
    socketio.on_namespace(app.extensions["tether_agents"])


def start_background_work():
    """The chunk writer, the presence loop and the token watch start with the first socket."""
    from app import presence, socketio
    from app.sockets.agent import watch_tokens

    app = current_app._get_current_object()
    writer = app.extensions["tether_writer"]
    writer.start()
    presence.start(app, writer)
    if not app.extensions.get("tether_token_watch_started"):
        app.extensions["tether_token_watch_started"] = True
        socketio.start_background_task(watch_tokens, app, app.extensions["tether_agents"])


class GuardedNamespace(Namespace):
    """A namespace that answers, and refuses, what a client sends that is no event of ours.

    python-socketio hands a client's event named "connect" or "disconnect" to the
    same handlers as the real ones: a client could reset its rate limit, or mark
    its agent offline while connected. The real ones run while the socket is
    connecting or disconnecting, never while it is connected.
    """

    def trigger_event(self, event, *args):
        if event in RESERVED_EVENTS:
            if self.server.manager.is_connected(args[0], self.namespace):
                return error_reply("invalid_message", f"{event} is not an event a client may send")
        elif not isinstance(event, str) or not hasattr(self, f"on_{event}"):
            return error_reply("invalid_message", "unknown event")
        return super().trigger_event(event, *args)


def stop_background_work(app):
    """End the background loops of an app (tests create many apps in one process)."""
    app.extensions["tether_running"] = False
    app.extensions["tether_writer"].stop()


def new_bucket():
    config = current_app.config
    return TokenBucket(config["RATE_LIMIT_PER_SECOND"], config["RATE_LIMIT_BURST"])


def inbound(audience, event, rate_limited=True):
    """Wrap an `on_<event>` method: rate limit, validate, and answer every failure.

    The method receives the loaded message and returns the acknowledgement. No
    exception escapes: an invalid or failing event is answered, never fatal.
    """

    def decorate(method):
        @functools.wraps(method)
        def handler(self, payload=None, *extra):
            from flask import request

            try:
                state = self.state(request.sid)
                if rate_limited and not state.bucket.take():
                    raise ProtocolError("rate_limited", "too many messages; slow down")
                payload = _scrubbed(payload, _check_size(payload))
                return method(self, state, load(audience, event, payload))
            except ProtocolError as error:
                db.session.rollback()
                return error_reply(error.code, error.message, error.fields)
            except Exception:
                log.exception("%s handler failed", event)
                db.session.rollback()
                return error_reply("internal", "the server could not handle this message")

        return handler

    return decorate


def _check_size(payload):
    limit = current_app.config["MAX_MESSAGE_BYTES"]
    try:
        text = json.dumps(payload)
        size = len(text)
    except (TypeError, ValueError, RecursionError):
        raise ProtocolError("invalid_message", "the payload is not JSON") from None
    if size > limit:
        raise ProtocolError("too_large", f"message larger than {limit} bytes")
    return text


def _scrubbed(payload, text):
    """The payload with NUL characters and lone surrogates replaced by U+FFFD.

    Neither can be stored (PostgreSQL refuses NUL in text, no driver encodes a lone
    surrogate): left in, they fail the handler, and an agent would resend the same
    chunk for ever.
    """
    if not _SUSPECT_ESCAPE.search(text):
        return payload
    return _scrub(payload)


def _scrub(value):
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, dict):
        return {_scrub(key): _scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value
