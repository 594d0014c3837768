"""/web: browsers (and scripts) of a logged-in user."""

from dataclasses import dataclass, field

from flask import request
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, emit, join_room

from app import relay
from app.limits import TokenBucket
from app.sockets import GuardedNamespace, inbound, new_bucket, start_background_work
from protocol import WEB_NAMESPACE, Events


@dataclass
class BrowserSocket:
    user_id: int
    bucket: TokenBucket = field(repr=False)


class WebNamespace(GuardedNamespace):
    def __init__(self):
        super().__init__(WEB_NAMESPACE)
        self.sockets = {}

    def state(self, sid):
        return self.sockets[sid]

    def on_connect(self, auth=None):
        """Accept only a logged-in session; tell it where its agents stand."""
        if not current_user.is_authenticated:
            raise ConnectionRefusedError("log in first", {"code": "unauthorized"})
        start_background_work()
        self.sockets[request.sid] = BrowserSocket(current_user.id, new_bucket())
        join_room(f"user:{current_user.id}")
        for status in relay.agent_statuses(current_user.id):
            emit(Events.AGENT_STATUS, status)

    def on_disconnect(self, reason=None):
        self.sockets.pop(request.sid, None)
        relay.delivery().drop(request.sid)

    @inbound("web", Events.EXECUTE_COMMAND)
    def on_execute_command(self, socket, message):
        """Run a command in a new or existing session."""
        return relay.execute_command(socket.user_id, message, request.sid)

    @inbound("web", Events.SUBSCRIBE)
    def on_subscribe(self, socket, message):
        """Replay a session after afterSeq and follow it live."""
        return relay.subscribe(socket.user_id, message, request.sid)

    @inbound("web", Events.UNSUBSCRIBE)
    def on_unsubscribe(self, socket, message):
        """Stop following a session."""
        return relay.unsubscribe(socket.user_id, message, request.sid)

    @inbound("web", Events.CANCEL_COMMAND)
    def on_cancel_command(self, socket, message):
        """Interrupt the running command of a session."""
        return relay.cancel_command(socket.user_id, message)

    @inbound("web", Events.PERMISSION_RESPONSE)
    def on_permission_response(self, socket, message):
        """Allow or deny a pending tool call."""
        return relay.permission_response(socket.user_id, message)
