"""Socket.IO namespaces: /web for browsers, /agent for agents."""

import functools
import json
import logging

from flask import current_app

from app import db
from app.limits import TokenBucket
from app.storage import ChunkWriter
from protocol import ProtocolError, error_reply, load

log = logging.getLogger("tether.sockets")


def register_namespaces(socketio, app):
    from app.sockets.agent import AgentNamespace
    from app.sockets.web import WebNamespace

    app.extensions["tether_writer"] = ChunkWriter(app, socketio)
    socketio.on_namespace(WebNamespace())
    socketio.on_namespace(AgentNamespace())


def start_background_work():
    """The chunk writer and the presence loop start with the first socket of the process."""
    from app import presence

    app = current_app._get_current_object()
    writer = app.extensions["tether_writer"]
    writer.start()
    presence.start(app, writer)


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
                _check_size(payload)
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
        size = len(json.dumps(payload))
    except (TypeError, ValueError):
        raise ProtocolError("invalid_message", "the payload is not JSON") from None
    if size > limit:
        raise ProtocolError("too_large", f"message larger than {limit} bytes")
