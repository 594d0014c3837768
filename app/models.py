"""Database models: users, their agents and projects, sessions, commands and stored chunks.

Declarations only: tables that look alike (ids, a foreign key, created_at) are still
different tables; behaviour lives in app/accounts.py, app/access.py and app/commands.py.
"""

import hashlib
import secrets
import uuid
from datetime import UTC, datetime

import flask
from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from app import db, login
from protocol import messages
from protocol.states import ACTIVE_STATES


def utcnow():
    return datetime.now(UTC).replace(tzinfo=None)


def new_id():
    return uuid.uuid4().hex


def hash_token(token):
    # Tokens carry 256 random bits, so one fast hash is enough: nobody can
    # brute-force the preimage, and a lookup by hash stays a single index probe.
    return hashlib.sha256(token.encode()).hexdigest()


class User(UserMixin, db.Model):
    __tablename__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(64), unique=True, nullable=False)
    password_hash = db.Column(db.String(256), nullable=False)
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)

    def set_password(self, password):
        self.password_hash = generate_password_hash(
            password, method=flask.current_app.config["PASSWORD_HASH_METHOD"]
        )

    def check_password(self, password):
        return check_password_hash(self.password_hash, password)


@login.user_loader
def load_user(user_id):
    """The signed-in user, while the login this browser's cookie names is still active.

    Logging out, "sign out everywhere" and a password change end logins on the
    server: a copy of the cookie kept elsewhere is then worth nothing.
    """
    login_id = flask.session.get("login_id")
    if not isinstance(login_id, str) or not str(user_id).isdigit():
        return None
    # One query, not a Login then a User: every page and every socket connect runs it.
    return db.session.scalar(_USER_OF_ACTIVE_LOGIN, {"login_id": login_id, "user_id": int(user_id)})


class Agent(db.Model):
    __tablename__ = "agents"
    __table_args__ = (db.UniqueConstraint("user_id", "name"),)
    id = db.Column(db.String(32), primary_key=True, default=new_id)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False, index=True)
    name = db.Column(db.String(64), nullable=False)
    token_hash = db.Column(db.String(64), unique=True, nullable=False)
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)
    expires_at = db.Column(db.DateTime)
    revoked_at = db.Column(db.DateTime)
    # What the agent said about itself when it last connected.
    hostname = db.Column(db.String(255))
    roots = db.Column(db.JSON, default=list)
    demo = db.Column(db.Boolean, default=False, nullable=False)
    version = db.Column(db.String(64))  # agent_client.version, as the agent reported it
    # Presence, shared by every server process: the socket that holds the agent,
    # the process that holds the socket and that process's last heartbeat.
    sid = db.Column(db.String(64))
    server_id = db.Column(db.String(64))
    seen_at = db.Column(db.DateTime)
    disconnected_at = db.Column(db.DateTime)

    user = db.relationship("User")

    @staticmethod
    def issue_token():
        # 256 random bits. The prefix makes a leaked token easy to recognise
        # (secret scanners) and keeps it from starting with "-" on a command line.
        return "tether_" + secrets.token_urlsafe(32)

    def set_token(self, token):
        self.token_hash = hash_token(token)

    @property
    def online(self):
        return self.sid is not None

    def usable(self, now=None):
        now = now or utcnow()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class PairingCode(db.Model):
    """A short code that an agent trades once, within minutes, for its token (app/pairing.py)."""

    __tablename__ = "pairing_codes"
    id = db.Column(db.Integer, primary_key=True)
    agent_id = db.Column(db.String(32), db.ForeignKey("agents.id"), nullable=False, index=True)
    code_hash = db.Column(db.String(64), unique=True, nullable=False)
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)
    expires_at = db.Column(db.DateTime, nullable=False)
    used_at = db.Column(db.DateTime)

    agent = db.relationship("Agent")


class Project(db.Model):
    __tablename__ = "projects"
    __table_args__ = (db.UniqueConstraint("user_id", "name"),)
    id = db.Column(db.String(32), primary_key=True, default=new_id)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False, index=True)
    agent_id = db.Column(db.String(32), db.ForeignKey("agents.id"), nullable=False, index=True)
    name = db.Column(db.String(128), nullable=False)
    path = db.Column(db.String(1024), nullable=False)
    permission_mode = db.Column(db.String(32), default="default", nullable=False)
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)

    agent = db.relationship("Agent")
    user = db.relationship("User")


class ChatSession(db.Model):
    """One conversation with Claude Code in a project."""

    __tablename__ = "chat_sessions"
    id = db.Column(db.String(32), primary_key=True, default=new_id)
    project_id = db.Column(db.String(32), db.ForeignKey("projects.id"), nullable=False, index=True)
    title = db.Column(db.String(200), nullable=False, default="")
    claude_session_id = db.Column(db.String(64))
    # The model its commands ask for, from the last command that named one (None: Claude Code's default).
    model = db.Column(db.String(128))
    # Highest seq handed out; the chunk writer bumps it atomically per batch.
    last_seq = db.Column(db.Integer, default=0, nullable=False)
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)
    updated_at = db.Column(db.DateTime, default=utcnow, nullable=False)

    project = db.relationship("Project")


class Command(db.Model):
    __tablename__ = "commands"
    __table_args__ = (db.UniqueConstraint("user_id", "client_message_id"),)
    id = db.Column(db.String(32), primary_key=True, default=new_id)
    session_id = db.Column(db.String(32), db.ForeignKey("chat_sessions.id"), nullable=False, index=True)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False)
    agent_id = db.Column(db.String(32), db.ForeignKey("agents.id"), nullable=False, index=True)
    text = db.Column(db.Text, nullable=False)
    working_directory = db.Column(db.String(1024), nullable=False)
    client_message_id = db.Column(db.String(64))
    # The model it asked for: its own, or its session's at the time (None: Claude Code's default).
    model = db.Column(db.String(128))
    # A mode this command alone asked for (plan); None: its project's mode when it is sent.
    permission_mode = db.Column(db.String(32))
    # queued -> sent -> running -> done | failed | stopped
    state = db.Column(db.String(16), default="queued", nullable=False, index=True)
    # Highest agent seq stored: a resent chunk at or below it is a duplicate.
    last_agent_seq = db.Column(db.Integer, default=0, nullable=False)
    error_code = db.Column(db.String(32))
    error_message = db.Column(db.Text)
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)
    finished_at = db.Column(db.DateTime)

    session = db.relationship("ChatSession")

    @property
    def active(self):
        return self.state in ACTIVE_STATES


class CommandAttachment(db.Model):
    """A file sent with a command (an image or a text file): app/attachments.py."""

    __tablename__ = "command_attachments"
    __table_args__ = (db.UniqueConstraint("command_id", "position"),)
    id = db.Column(db.Integer, primary_key=True)
    command_id = db.Column(db.String(32), db.ForeignKey("commands.id"), nullable=False, index=True)
    position = db.Column(db.Integer, nullable=False)  # its index in the command's list, from 0
    name = db.Column(db.String(255), nullable=False)
    media_type = db.Column(db.String(100), nullable=False)
    size = db.Column(db.Integer, nullable=False)
    data = db.Column(db.LargeBinary, nullable=False)


class Chunk(db.Model):
    """One stored command_result: what a browser replays by seq."""

    __tablename__ = "chunks"
    __table_args__ = (db.UniqueConstraint("session_id", "seq"),)
    id = db.Column(db.Integer, primary_key=True)
    session_id = db.Column(db.String(32), db.ForeignKey("chat_sessions.id"), nullable=False)
    seq = db.Column(db.Integer, nullable=False)
    command_id = db.Column(db.String(32), db.ForeignKey("commands.id"), nullable=False, index=True)
    response = db.Column(db.Text, nullable=False, default="")
    status = db.Column(db.String(16), nullable=False)
    event = db.Column(db.JSON)
    error = db.Column(db.JSON)
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)

    def to_wire(self):
        return messages.command_result(
            self.session_id, self.command_id, self.seq, self.response, self.status, self.event, self.error
        )


class PermissionRequest(db.Model):
    """A tool call waiting for (or given) the user's answer; doubles as the audit trail."""

    __tablename__ = "permission_requests"
    id = db.Column(db.String(64), primary_key=True)
    session_id = db.Column(db.String(32), db.ForeignKey("chat_sessions.id"), nullable=False, index=True)
    command_id = db.Column(db.String(32), db.ForeignKey("commands.id"), nullable=False)
    tool_name = db.Column(db.String(128), nullable=False)
    input = db.Column(db.JSON, nullable=False)
    decision = db.Column(db.String(8))  # None while pending, then allow | deny
    message = db.Column(db.Text)
    decided_by = db.Column(db.Integer, db.ForeignKey("users.id"))
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)
    decided_at = db.Column(db.DateTime)

    def to_wire(self):
        return messages.permission_request(
            self.session_id, self.command_id, self.id, self.tool_name, self.input
        )


# -- notifications (app/push.py, app/notify.py) ----------------------------------------


class PushSubscription(db.Model):
    """One browser's Web Push subscription (PushSubscription.toJSON()), for one user."""

    __tablename__ = "push_subscriptions"
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False, index=True)
    endpoint = db.Column(db.Text, nullable=False)
    # A browser has one endpoint: unique through its hash (endpoints may be long for an index).
    endpoint_hash = db.Column(db.String(64), unique=True, nullable=False)
    p256dh = db.Column(db.String(128), nullable=False)
    auth = db.Column(db.String(64), nullable=False)
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)

    def to_webpush(self):
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


class NotificationSettings(db.Model):
    """Which events a user is pushed (no row: all of them)."""

    __tablename__ = "notification_settings"
    user_id = db.Column(db.Integer, db.ForeignKey("users.id"), primary_key=True)
    permission = db.Column(db.Boolean, default=True, nullable=False)
    finished = db.Column(db.Boolean, default=True, nullable=False)


class NotificationSent(db.Model):
    """One push per (user, event): inserted before sending, so a replay, a reconnect or a
    restart finds the row and sends nothing again."""

    __tablename__ = "notifications_sent"
    __table_args__ = (db.UniqueConstraint("user_id", "event_key"),)
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False)
    event_key = db.Column(db.String(100), nullable=False)
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False, index=True)


class AuditEntry(db.Model):
    """Who ran what, and who allowed or denied which tool, per project."""

    __tablename__ = "audit_log"
    id = db.Column(db.Integer, primary_key=True)
    project_id = db.Column(db.String(32), db.ForeignKey("projects.id"), nullable=False, index=True)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id"))
    action = db.Column(db.String(32), nullable=False)
    detail = db.Column(db.Text, nullable=False, default="")
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)

    user = db.relationship("User")


class ProjectMember(db.Model):
    """A user the owner shared a project with, as `operator` or `viewer`."""

    __tablename__ = "project_members"
    project_id = db.Column(db.String(32), db.ForeignKey("projects.id"), primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id"), primary_key=True, index=True)
    role = db.Column(db.String(16), nullable=False)
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)

    user = db.relationship("User")
    project = db.relationship("Project")


class SessionLink(db.Model):
    """A read-only link to one session: whoever holds it sees that session, nothing else."""

    __tablename__ = "session_links"
    id = db.Column(db.String(32), primary_key=True, default=new_id)
    session_id = db.Column(db.String(32), db.ForeignKey("chat_sessions.id"), nullable=False, index=True)
    token_hash = db.Column(db.String(64), unique=True, nullable=False)
    created_by = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False)
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)
    expires_at = db.Column(db.DateTime, nullable=False)
    revoked_at = db.Column(db.DateTime)

    session = db.relationship("ChatSession")

    @staticmethod
    def issue_token():
        return secrets.token_urlsafe(24)

    def usable(self, now=None):
        return self.revoked_at is None and self.expires_at > (now or utcnow())


class Login(db.Model):
    """One sign-in of a user in one browser: ending it ends that login's access and sockets."""

    __tablename__ = "logins"
    id = db.Column(db.String(32), primary_key=True, default=new_id)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False, index=True)
    created_at = db.Column(db.DateTime, default=utcnow, nullable=False)
    seen_at = db.Column(db.DateTime, default=utcnow, nullable=False)
    ended_at = db.Column(db.DateTime)
    user_agent = db.Column(db.String(256), nullable=False, default="")
    address = db.Column(db.String(64), nullable=False, default="")


_USER_OF_ACTIVE_LOGIN = (
    db.select(User)
    .join(Login, Login.user_id == User.id)
    .where(Login.id == db.bindparam("login_id"), Login.ended_at.is_(None), User.id == db.bindparam("user_id"))
)
