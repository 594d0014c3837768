"""The one way out: every message the server sends to a socket leaves through here.

Relay, storage, presence and accounts build messages with `protocol.messages`
and hand them to these functions; none of them calls `socketio` itself. Sends
that announce a database change are queued with `after_commit` so that nobody
is told of a change that was rolled back, and everybody is told in commit order.
"""

import logging

from sqlalchemy import event
from sqlalchemy.orm import Session

from app import socketio
from protocol import AGENT_NAMESPACE, WEB_NAMESPACE, Events
from protocol.events import agent_room, session_room, user_room

log = logging.getLogger("tether.outbound")
_PENDING = "tether_outbound"


# -- browsers --------------------------------------------------------------------


def to_session(message):
    """To every subscriber of the message's session, on every server process."""
    socketio.emit(message["type"], message, to=session_room(message["sessionId"]), namespace=WEB_NAMESPACE)


def result_to_session(message):
    """A stored `command_result` to its session's subscribers.

    Intercepted on every process by the client manager (app/transport.py) and
    delivered through each subscriber's seq cursor (app/delivery.py), never as a
    plain room emit: that is what keeps replay and live free of gaps and duplicates.
    """
    socketio.emit(
        Events.COMMAND_RESULT, message, to=session_room(message["sessionId"]), namespace=WEB_NAMESPACE
    )


def to_user(user_id, message):
    """To every browser connection of one user."""
    socketio.emit(message["type"], message, to=user_room(user_id), namespace=WEB_NAMESPACE)


def to_browser(sid, message):
    """To one browser connection."""
    socketio.emit(message["type"], message, to=sid, namespace=WEB_NAMESPACE)


def join_session(sid, session_id):
    socketio.server.enter_room(sid, session_room(session_id), namespace=WEB_NAMESPACE)


def leave_session(sid, session_id):
    socketio.server.leave_room(sid, session_room(session_id), namespace=WEB_NAMESPACE)


def join_user(sid, user_id):
    socketio.server.enter_room(sid, user_room(user_id), namespace=WEB_NAMESPACE)


# -- agents ----------------------------------------------------------------------


def to_agent(agent_sid, message, callback=None):
    """To an agent's connection (on whichever process holds it); `callback` gets its ack."""
    socketio.emit(message["type"], message, to=agent_sid, namespace=AGENT_NAMESPACE, callback=callback)


def join_agent(sid, agent_id):
    socketio.server.enter_room(sid, agent_room(agent_id), namespace=AGENT_NAMESPACE)


# -- closing connections -----------------------------------------------------------


def disconnect_agent(sid):
    """Close an agent's socket, here or (through the message queue) on another process."""
    socketio.server.disconnect(sid, namespace=AGENT_NAMESPACE)


def disconnect_browser(sid):
    socketio.server.disconnect(sid, namespace=WEB_NAMESPACE)


def disconnect_browser_later(sid):
    """Close a browser socket from inside a send, without waiting on it."""
    socketio.start_background_task(disconnect_browser, sid)


# -- after the transaction ------------------------------------------------------------


def after_commit(session, send, message):
    """Call `send(message)` once the session's transaction commits; never if it rolls back."""
    session.info.setdefault(_PENDING, []).append((send, message))


@event.listens_for(Session, "after_commit")
def _send_pending(session):
    for send, message in session.info.pop(_PENDING, ()):
        try:
            send(message)
        except Exception:  # a failed send must not undo a commit that has happened
            log.exception("could not send %s", message.get("type"))


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session, previous_transaction):
    if not session.in_transaction():
        session.info.pop(_PENDING, None)
