"""/web: browsers (and scripts) of a logged-in user, or of a read-only link to one session."""

from dataclasses import dataclass, field

from flask import request, session
from flask_login import current_user
from flask_socketio import ConnectionRefusedError

from app import access, current_services, db, outbound, presence, relay, workspace
from app.limits import TokenBucket
from app.models import Login
from app.sockets import GuardedNamespace, inbound, new_bucket
from protocol import WEB_NAMESPACE, Events, ProtocolError


@dataclass
class BrowserSocket:
    """A signed-in user's socket (user_id, login_id) or a read-only link's (link_id, link_session_id)."""

    user_id: int | None
    bucket: TokenBucket = field(repr=False)
    login_id: str | None = None
    link_id: str | None = None
    link_session_id: str | None = None

    def user(self):
        """The user behind the socket; a read-only link may only follow its session."""
        if self.user_id is None:
            raise ProtocolError("forbidden", "a read-only link may only follow its session")
        return self.user_id


class WebNamespace(GuardedNamespace):
    def __init__(self):
        super().__init__(WEB_NAMESPACE)

    def on_connect(self, auth=None):
        """Accept a logged-in session (told where its agents stand) or a usable read-only link."""
        if current_user.is_authenticated:
            socket = BrowserSocket(current_user.id, new_bucket(), login_id=session.get("login_id"))
            self.sockets[request.sid] = socket
            outbound.join_user(request.sid, current_user.id)
            for status in presence.statuses_for(current_user.id):
                outbound.to_browser(request.sid, status)
            return
        link = access.link_for((auth or {}).get("link") if isinstance(auth, dict) else None)
        if link is None:
            raise ConnectionRefusedError("log in first", {"code": "unauthorized"})
        reader = BrowserSocket(None, new_bucket(), link_id=link.id, link_session_id=link.session_id)
        self.sockets[request.sid] = reader

    def on_disconnect(self, reason=None):
        self.sockets.pop(request.sid, None)
        current_services().delivery.drop(request.sid)

    @inbound("web", Events.EXECUTE_COMMAND, max_bytes="MAX_COMMAND_MESSAGE_BYTES")  # attachments
    def on_execute_command(self, socket, message):
        """Run a command in a new or existing session."""
        return relay.execute_command(socket.user(), message, request.sid)

    @inbound("web", Events.SUBSCRIBE)
    def on_subscribe(self, socket, message):
        """Replay a session after afterSeq and follow it live."""
        return relay.subscribe(socket.user_id, message, request.sid, socket.link_session_id)

    @inbound("web", Events.UNSUBSCRIBE)
    def on_unsubscribe(self, socket, message):
        """Stop following a session."""
        return relay.unsubscribe(socket.user_id, message, request.sid, socket.link_session_id)

    @inbound("web", Events.CANCEL_COMMAND)
    def on_cancel_command(self, socket, message):
        """Interrupt the running command of a session."""
        return relay.cancel_command(socket.user(), message)

    @inbound("web", Events.PERMISSION_RESPONSE)
    def on_permission_response(self, socket, message):
        """Allow or deny a pending tool call."""
        return relay.permission_response(socket.user(), message)

    # -- the project's files and changes (app/workspace.py) --

    @inbound("web", Events.LIST_FILES)
    def on_list_files(self, socket, message):
        """List a directory of the project, from its agent's machine."""
        return workspace.ask(socket.user(), message, request.sid, "list_files")

    @inbound("web", Events.READ_FILE)
    def on_read_file(self, socket, message):
        """Read a file of the project, from its agent's machine."""
        return workspace.ask(socket.user(), message, request.sid, "read_file")

    @inbound("web", Events.GIT_CHANGES)
    def on_git_changes(self, socket, message):
        """The project's changes against HEAD, from its agent's machine."""
        return workspace.ask(socket.user(), message, request.sid, "git_changes")

    def cut_off_lost_access(self):
        """Close sockets whose login ended or link stopped working; end follows that lost access."""
        sockets = dict(self.sockets)
        if not sockets:
            return
        for sid in _ended(sockets):
            outbound.disconnect_browser(sid)
            sockets.pop(sid, None)
        delivery = current_services().delivery
        follows = [
            (sid, sockets[sid].user_id, sockets[sid].link_session_id, session_id)
            for sid, session_id in delivery.follows()
            if sid in sockets
        ]
        for sid, session_id in access.lost_follows(follows):
            delivery.unsubscribe(sid, session_id)
            outbound.leave_session(sid, session_id)


def _ended(sockets):
    """The sids of sockets whose login has ended or whose read-only link is no longer usable."""
    login_ids = {s.login_id for s in sockets.values() if s.login_id}
    still_on = db.select(Login.id).filter(Login.id.in_(login_ids), Login.ended_at.is_(None))
    active = set(db.session.scalars(still_on))
    links = access.usable_links({s.link_id for s in sockets.values() if s.link_id})

    def ended(socket):
        return socket.login_id not in active if socket.user_id is not None else socket.link_id not in links

    return [sid for sid, socket in sockets.items() if ended(socket)]


def watch_browser_access(app):
    """A scheduled job (ACCESS_CHECK_INTERVAL): app/access.py decides, this applies it to live sockets."""
    current_services(app).web_namespace.cut_off_lost_access()
