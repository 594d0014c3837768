"""Creating and changing users, agents and projects: shared by the admin commands and the pages."""

import os
from datetime import timedelta

from sqlalchemy import update

from app import db, outbound
from app.access import MEMBER_ROLES
from app.models import (
    Agent,
    AuditEntry,
    ChatSession,
    Login,
    Project,
    ProjectMember,
    SessionLink,
    User,
    hash_token,
    utcnow,
)
from protocol.events import PROJECT_PERMISSION_MODES


class AccountError(ValueError):
    """Bad input for an account operation; the message is shown to the user as is."""


def find_user(username):
    user = db.session.scalar(db.select(User).filter_by(username=username))
    if user is None:
        raise AccountError(f"no user named {username!r}")
    return user


def find_agent(user, name):
    agent = db.session.scalar(db.select(Agent).filter_by(user_id=user.id, name=name))
    if agent is None:
        raise AccountError(f"user {user.username!r} has no agent named {name!r}")
    return agent


def _check_name(kind, name, max_length):
    name = (name or "").strip()
    if not name or len(name) > max_length:
        raise AccountError(f"{kind} name must be 1 to {max_length} characters")
    return name


def create_user(username, password):
    username = _check_name("user", username, 64)
    if len(password or "") < 8:
        raise AccountError("password must be at least 8 characters")
    if db.session.scalar(db.select(User).filter_by(username=username)):
        raise AccountError(f"user {username!r} already exists")
    user = User(username=username)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def set_password(username, password):
    """Change a user's password; every login of theirs ends (their sockets close within a second)."""
    if len(password or "") < 8:
        raise AccountError("password must be at least 8 characters")
    user = find_user(username)
    user.set_password(password)
    end_logins(user.id)
    return user


# -- logins --------------------------------------------------------------------------


def start_login(user, user_agent="", address=""):
    """Record a sign-in; its id goes into the browser's session cookie."""
    record = Login(user_id=user.id, user_agent=(user_agent or "")[:256], address=(address or "")[:64])
    db.session.add(record)
    db.session.commit()
    return record


def end_login(login_id):
    """End one login (logging out): its cookie stops working, its sockets close within a second."""
    db.session.execute(
        update(Login).where(Login.id == login_id, Login.ended_at.is_(None)).values(ended_at=utcnow())
    )
    db.session.commit()


def end_logins(user_id):
    """End every login of a user (a password change, "sign out everywhere")."""
    db.session.execute(
        update(Login).where(Login.user_id == user_id, Login.ended_at.is_(None)).values(ended_at=utcnow())
    )
    db.session.commit()


def active_logins(user_id):
    return db.session.scalars(
        db.select(Login).filter_by(user_id=user_id, ended_at=None).order_by(Login.created_at.desc())
    ).all()


def create_agent(user, name, expires_at=None):
    """Register an agent; returns (agent, token). The token is shown once and stored hashed."""
    name = _check_name("agent", name, 64)
    if db.session.scalar(db.select(Agent).filter_by(user_id=user.id, name=name)):
        raise AccountError(f"user {user.username!r} already has an agent named {name!r}")
    token = Agent.issue_token()
    agent = Agent(user_id=user.id, name=name, expires_at=expires_at)
    agent.set_token(token)
    db.session.add(agent)
    db.session.commit()
    return agent, token


def rotate_token(agent):
    """Give the agent a new token; the old one stops working at once and its socket is closed."""
    token = Agent.issue_token()
    agent.set_token(token)
    db.session.commit()
    _disconnect(agent)
    return token


def revoke_agent(agent):
    """Revoke the agent's token and close its socket.

    Wherever the socket is: here, on another server process through the message
    queue, or, from a process that reaches neither (an admin command without a
    queue), by the token watch of the process that holds it (app/sockets/agent.py).
    """
    agent.revoked_at = utcnow()
    db.session.commit()
    _disconnect(agent)


def _disconnect(agent):
    if agent.sid:
        outbound.disconnect_agent(agent.sid)


def create_project(user, agent, name, path, permission_mode="default"):
    name = _check_name("project", name, 128)
    path = (path or "").strip()
    if not os.path.isabs(path) and not path.startswith("~"):
        raise AccountError(f"project path must be absolute, got {path!r}")
    if permission_mode not in PROJECT_PERMISSION_MODES:
        raise AccountError(f"permission mode must be one of {', '.join(PROJECT_PERMISSION_MODES)}")
    if agent.user_id != user.id:
        raise AccountError("that agent belongs to another user")
    if db.session.scalar(db.select(Project).filter_by(user_id=user.id, name=name)):
        raise AccountError(f"user {user.username!r} already has a project named {name!r}")
    project = Project(
        user_id=user.id, agent_id=agent.id, name=name, path=path, permission_mode=permission_mode
    )
    db.session.add(project)
    db.session.commit()
    return project


def audit(project_id, user_id, action, detail=""):
    """Record an action in the project's audit log (committed by the caller)."""
    db.session.add(AuditEntry(project_id=project_id, user_id=user_id, action=action, detail=detail))


# -- sharing -------------------------------------------------------------------------

DEFAULT_LINK_HOURS = 24


def find_project(project_id):
    project = db.session.get(Project, project_id)
    if project is None:
        raise AccountError(f"no project with id {project_id!r}")
    return project


def find_session(session_id):
    session = db.session.get(ChatSession, session_id)
    if session is None:
        raise AccountError(f"no session with id {session_id!r}")
    return session


def share_project(project, username, role, by_user_id=None):
    """Give a user a role in the project (or change it). Returns the membership."""
    if role not in MEMBER_ROLES:
        raise AccountError(f"role must be one of {', '.join(MEMBER_ROLES)}")
    user = find_user(username)
    if user.id == project.user_id:
        raise AccountError(f"{username!r} owns this project already")
    member = db.session.get(ProjectMember, (project.id, user.id))
    if member is None:
        member = ProjectMember(project_id=project.id, user_id=user.id, role=role)
        db.session.add(member)
    member.role = role
    audit(project.id, by_user_id or project.user_id, "share", f"{username} as {role}")
    db.session.commit()
    return member


def unshare_project(project, username, by_user_id=None):
    """Take a user's role away: their events about the project are refused at once, and their
    live streams of its sessions end within a second (app/sockets/web.py's access watch)."""
    user = find_user(username)
    member = db.session.get(ProjectMember, (project.id, user.id))
    if member is None:
        raise AccountError(f"project {project.name!r} is not shared with {username!r}")
    db.session.delete(member)
    audit(project.id, by_user_id or project.user_id, "unshare", username)
    db.session.commit()


def members_of(project):
    return db.session.scalars(
        db.select(ProjectMember).filter_by(project_id=project.id).order_by(ProjectMember.created_at)
    ).all()


def create_session_link(session, by_user_id, hours=DEFAULT_LINK_HOURS):
    """A read-only link to one session; returns (link, URL path). The token is stored hashed."""
    if not 0 < hours <= 24 * 365:
        raise AccountError("a link lives from a moment to a year: give --hours between 0 and 8760")
    token = SessionLink.issue_token()
    link = SessionLink(
        session_id=session.id,
        token_hash=hash_token(token),
        created_by=by_user_id,
        expires_at=utcnow() + timedelta(hours=hours),
    )
    db.session.add(link)
    audit(session.project_id, by_user_id, "link", f"session {session.id} for {hours:g} h")
    db.session.commit()
    return link, f"/s/{token}"


def revoke_session_links(session, by_user_id=None, link_id=None):
    """Revoke a session's read-only links (or one of them); returns how many were live."""
    query = update(SessionLink).where(SessionLink.session_id == session.id, SessionLink.revoked_at.is_(None))
    if link_id:
        query = query.where(SessionLink.id == link_id)
    revoked = db.session.execute(query.values(revoked_at=utcnow())).rowcount
    audit(session.project_id, by_user_id or session.project.user_id, "unlink", f"session {session.id}")
    db.session.commit()
    return revoked


def session_links(session_ids):
    """The live links of these sessions, newest first."""
    now = utcnow()
    return db.session.scalars(
        db.select(SessionLink)
        .filter(SessionLink.session_id.in_(session_ids), SessionLink.revoked_at.is_(None))
        .filter(SessionLink.expires_at > now)
        .order_by(SessionLink.created_at.desc())
    ).all()
