"""Database models: users, their agents and projects, sessions, commands and stored chunks."""

import hashlib
import secrets
import uuid
from datetime import UTC, datetime

from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from app import db, login

ACTIVE_STATES = ("queued", "sent", "running")
FINAL_STATES = ("done", "failed", "stopped")


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
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password):
        return check_password_hash(self.password_hash, password)


@login.user_loader
def load_user(user_id):
    return db.session.get(User, int(user_id))


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


class ChatSession(db.Model):
    """One conversation with Claude Code in a project."""

    __tablename__ = "chat_sessions"
    id = db.Column(db.String(32), primary_key=True, default=new_id)
    project_id = db.Column(db.String(32), db.ForeignKey("projects.id"), nullable=False, index=True)
    title = db.Column(db.String(200), nullable=False, default="")
    claude_session_id = db.Column(db.String(64))
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
        return result_message(
            self.session_id,
            self.command_id,
            self.seq,
            self.response,
            self.status,
            self.event,
            self.error,
        )


def result_message(session_id, command_id, seq, response, status, event=None, error=None):
    """The `command_result` payload of the wire contract."""
    message = {
        "type": "command_result",
        "sessionId": session_id,
        "commandId": command_id,
        "seq": seq,
        "response": response,
        "status": status,
    }
    if event is not None:
        message["event"] = event
    if error is not None:
        message["error"] = error
    return message


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
        return {
            "type": "permission_request",
            "sessionId": self.session_id,
            "commandId": self.command_id,
            "requestId": self.id,
            "toolName": self.tool_name,
            "input": self.input,
        }


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
