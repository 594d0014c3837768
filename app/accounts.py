"""Creating and changing users, agents and projects: shared by the admin commands and the pages."""

import os

from app import db
from app.models import Agent, AuditEntry, Project, User, utcnow

PERMISSION_MODES = ("default", "acceptEdits", "plan")


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
    if len(password or "") < 8:
        raise AccountError("password must be at least 8 characters")
    user = find_user(username)
    user.set_password(password)
    db.session.commit()
    return user


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
    """Give the agent a new token; the old one stops working at once."""
    token = Agent.issue_token()
    agent.set_token(token)
    db.session.commit()
    return token


def revoke_agent(agent):
    agent.revoked_at = utcnow()
    db.session.commit()


def create_project(user, agent, name, path, permission_mode="default"):
    name = _check_name("project", name, 128)
    path = (path or "").strip()
    if not os.path.isabs(path) and not path.startswith("~"):
        raise AccountError(f"project path must be absolute, got {path!r}")
    if permission_mode not in PERMISSION_MODES:
        raise AccountError(f"permission mode must be one of {', '.join(PERMISSION_MODES)}")
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
