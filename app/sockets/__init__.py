"""Socket.IO namespaces: /web for browsers, /agent for agents."""

import contextvars
import functools
import json
import logging
import re

from flask import current_app, request
from flask_socketio import Namespace

from app.background import end_session
from app.limits import TokenBucket
from protocol import ProtocolError, error_reply, load

log = logging.getLogger("tether.sockets")
RESERVED_EVENTS = ("connect", "disconnect")
# In JSON's ASCII form, a NUL or a UTF-16 surrogate (lone, or half of a pair) shows as one of these.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|d[89a-f])")


def register_namespaces(socketio):
    """Serve /web and /agent; returns both namespaces (their sockets are checked on a schedule)."""
    from app.sockets.agent import AgentNamespace
    from app.sockets.web import WebNamespace

    web, agents = WebNamespace(), AgentNamespace()
    socketio.on_namespace(web)
    socketio.on_namespace(agents)
    return web, agents


class GuardedNamespace(Namespace):
    """A namespace that answers, and refuses, what a client sends that is no event of ours.

    python-socketio hands a client's event named "connect" or "disconnect" to the
    same handlers as the real ones: a client could reset its rate limit, or mark
    its agent offline while connected. The real ones run while the socket is
    connecting or disconnecting, never while it is connected.
    """

    # Whether a connected client's events run in an app context only, without Flask's request
    # context: see AgentNamespace.
    events_need_request = True

    def __init__(self, namespace):
        super().__init__(namespace)
        self.sockets = {}  # sid -> what this namespace keeps per connected socket

    def state(self, sid):
        return self.sockets[sid]

    def trigger_event(self, event, *args):
        if event in RESERVED_EVENTS:
            if self.server.manager.is_connected(args[0], self.namespace):
                return error_reply("invalid_message", f"{event} is not an event a client may send")
        elif not isinstance(event, str) or not hasattr(self, f"on_{event}"):
            return error_reply("invalid_message", "unknown event")
        elif not self.events_need_request:
            return self._in_app_context(event, *args)
        return super().trigger_event(event, *args)

    def _in_app_context(self, event, sid, *args):
        environ = self.server.get_environ(sid, namespace=self.namespace)
        if environ is None:  # disconnected meanwhile: nobody to answer
            return None
        with environ["flask.app"].app_context():
            token = _EVENT_SID.set(sid)
            try:
                return getattr(self, f"on_{event}")(*args)
            finally:
                _EVENT_SID.reset(token)


# The sid of the socket whose event runs outside a request context (GuardedNamespace._in_app_context).
_EVENT_SID = contextvars.ContextVar("tether_event_sid", default=None)


def event_sid():
    """The socket whose event is being handled."""
    return _EVENT_SID.get() or request.sid


def new_bucket():
    config = current_app.config
    return TokenBucket(config["RATE_LIMIT_PER_SECOND"], config["RATE_LIMIT_BURST"])


def inbound(audience, event, rate_limited=True, max_bytes="MAX_MESSAGE_BYTES"):
    """Wrap an `on_<event>` method: rate limit, validate, and answer every failure.

    The method receives the loaded message and returns the acknowledgement. No
    exception escapes: an invalid or failing event is answered, never fatal.
    `max_bytes` names the setting that bounds the event's JSON.
    """

    def decorate(method):
        @functools.wraps(method)
        def handler(self, payload=None, *extra):
            try:
                state = self.state(event_sid())
                if rate_limited and not state.bucket.take():
                    raise ProtocolError("rate_limited", "too many messages; slow down")
                payload = _scrubbed(payload, _check_size(payload, current_app.config[max_bytes]))
                return method(self, state, load(audience, event, payload))
            except ProtocolError as error:
                end_session()
                return error_reply(error.code, error.message, error.fields)
            except Exception:
                log.exception("%s handler failed", event)
                end_session()
                return error_reply("internal", "the server could not handle this message")

        return handler

    return decorate


def _check_size(payload, limit):
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
