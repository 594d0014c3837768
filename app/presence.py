"""Agent presence, shared through the database so that every server process agrees.

An agent is online while `agents.sid` is set. The process holding its socket
refreshes `seen_at` for all its agents every PRESENCE_INTERVAL; a process that
dies without a word stops refreshing, and any other process marks its agents
offline after PRESENCE_TIMEOUT. Commands left running on an agent that stays
away longer than AGENT_LOST_GRACE end with `agent_lost`.
"""

import logging
from datetime import timedelta

from sqlalchemy import update

from app import SERVER_ID, db, outbound
from app.models import Agent, Command, Project, ProjectMember, utcnow
from app.storage import close_command
from protocol import messages
from protocol.states import ACTIVE_STATES

log = logging.getLogger("tether.presence")


def status_message(agent, online=None):
    online = agent.online if online is None else online
    return messages.agent_status(agent.id, agent.name, online, agent.version, bool(agent.demo))


def broadcast_status(agent, online=None):
    """To the agent's owner and to everyone a project on it is shared with."""
    message = status_message(agent, online)
    for user_id in _people_of_agent(agent):
        outbound.to_user(user_id, message)


def _people_of_agent(agent):
    members = db.session.scalars(
        db.select(ProjectMember.user_id)
        .join(Project, Project.id == ProjectMember.project_id)
        .filter(Project.agent_id == agent.id)
        .distinct()
    ).all()
    return {agent.user_id, *members}


def agent_connected(agent, sid, info):
    """Record that `agent` is now on socket `sid` here; a previous socket is replaced."""
    previous = agent.sid
    agent.sid = sid
    agent.server_id = SERVER_ID
    agent.seen_at = utcnow()
    agent.disconnected_at = None
    agent.hostname = info.get("hostname")
    agent.roots = info.get("roots") or []
    agent.demo = bool(info.get("demo"))
    agent.version = info.get("version")
    db.session.commit()
    if previous and previous != sid:
        log.info("agent %s reconnected; closing its previous socket", agent.name)
        outbound.disconnect_agent(previous)
    broadcast_status(agent, online=True)


def agent_disconnected(agent_id, sid):
    """Mark the agent offline, unless a newer socket has taken over already."""
    marked = db.session.execute(
        update(Agent)
        .where(Agent.id == agent_id, Agent.sid == sid)
        .values(sid=None, server_id=None, disconnected_at=utcnow())
    ).rowcount
    db.session.commit()
    if marked:
        broadcast_status(db.session.get(Agent, agent_id), online=False)


def statuses_for(user_id):
    """The `agent_status` of each of a user's agents and of the agents of projects shared with
    them, for a browser that just connected."""
    # Columns, not Agent objects: every socket connect runs this.
    rows = db.session.execute(_STATUS_OF_AGENTS_SEEN_BY, {"user_id": user_id})
    return [
        messages.agent_status(row.id, row.name, row.sid is not None, row.version, bool(row.demo))
        for row in rows
    ]


_STATUS_OF_AGENTS_SEEN_BY = db.select(Agent.id, Agent.name, Agent.sid, Agent.version, Agent.demo).filter(
    Agent.revoked_at.is_(None),
    (Agent.user_id == db.bindparam("user_id"))
    | Agent.id.in_(
        db.select(Project.agent_id)
        .join(ProjectMember, ProjectMember.project_id == Project.id)
        .filter(ProjectMember.user_id == db.bindparam("user_id"))
    ),
)


def sweep(app):
    """One round of presence (a scheduled job): refresh ours, expire the dead, end lost commands."""
    config = app.config
    now = utcnow()
    db.session.execute(
        update(Agent).where(Agent.server_id == SERVER_ID, Agent.sid.is_not(None)).values(seen_at=now)
    )
    stale = db.session.scalars(
        db.select(Agent).filter(
            Agent.sid.is_not(None),
            Agent.seen_at < now - timedelta(seconds=config["PRESENCE_TIMEOUT"]),
        )
    ).all()
    for agent in stale:
        log.info("agent %s: its server process went quiet; marking it offline", agent.name)
        agent.sid, agent.server_id, agent.disconnected_at = None, None, agent.seen_at
    db.session.commit()
    for agent in stale:
        broadcast_status(agent, online=False)
    _end_lost_commands(now, config["AGENT_LOST_GRACE"])


def _end_lost_commands(now, grace):
    cutoff = now - timedelta(seconds=grace)
    lost = db.session.scalars(
        db.select(Command)
        .join(Agent, Agent.id == Command.agent_id)
        .filter(Command.state.in_(ACTIVE_STATES), Agent.sid.is_(None))
        .filter(Agent.disconnected_at < cutoff)
    ).all()
    for command in lost:
        close_command(command.id, "agent_lost", "The agent went away and did not come back.")
