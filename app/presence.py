"""Agent presence, shared through the database so that every server process agrees.

An agent is online while `agents.sid` is set. The process holding its socket
refreshes `seen_at` for all its agents every PRESENCE_INTERVAL; a process that
dies without a word stops refreshing, and any other process marks its agents
offline after PRESENCE_TIMEOUT. Commands left running on an agent that stays
away longer than AGENT_LOST_GRACE end with `agent_lost`.
"""

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import update

from app import SERVER_ID, db, socketio
from app.models import ACTIVE_STATES, Agent, Command, utcnow
from app.storage import ChunkIn
from protocol import AGENT_NAMESPACE, WEB_NAMESPACE, Events

log = logging.getLogger("tether.presence")


def status_message(agent, online=None):
    return {
        "type": Events.AGENT_STATUS,
        "agentId": agent.id,
        "name": agent.name,
        "online": agent.online if online is None else online,
    }


def broadcast_status(agent, online=None):
    socketio.emit(
        Events.AGENT_STATUS,
        status_message(agent, online),
        to=f"user:{agent.user_id}",
        namespace=WEB_NAMESPACE,
    )


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
    db.session.commit()
    if previous and previous != sid:
        log.info("agent %s reconnected; closing its previous socket", agent.name)
        socketio.server.disconnect(previous, namespace=AGENT_NAMESPACE)
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


def disconnect_agent(agent):
    """Close a revoked or rotated agent's socket, wherever it is."""
    if agent.sid:
        socketio.server.disconnect(agent.sid, namespace=AGENT_NAMESPACE)


def sweep(app, writer):
    """One round of the presence loop: refresh ours, expire the dead, end lost commands."""
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
    _disconnect_unusable(now)
    _end_lost_commands(now, config["AGENT_LOST_GRACE"], writer)


def _disconnect_unusable(now):
    """Revoked or expired agents still connected to this process are cut off."""
    for agent in db.session.scalars(
        db.select(Agent).filter(Agent.server_id == SERVER_ID, Agent.sid.is_not(None))
    ):
        if not agent.usable(now):
            disconnect_agent(agent)


def _end_lost_commands(now, grace, writer):
    cutoff = now - timedelta(seconds=grace)
    lost = db.session.scalars(
        db.select(Command)
        .join(Agent, Agent.id == Command.agent_id)
        .filter(Command.state.in_(ACTIVE_STATES), Agent.sid.is_(None))
        .filter(Agent.disconnected_at < cutoff)
    ).all()
    for command in lost:
        end_command(writer, command.id, "agent_lost", "The agent went away and did not come back.")


def end_command(writer, command_id, code, message):
    """Close a command from the server side with a final error result."""
    writer.store_nowait(ChunkIn(command_id, None, error={"code": code, "message": message}))


def run_presence_loop(app, writer):
    from app.relay import redispatch_unacknowledged

    while True:
        socketio.sleep(app.config["PRESENCE_INTERVAL"])
        if not app.extensions["tether_running"]:
            return
        with app.app_context():
            try:
                sweep(app, writer)
                redispatch_unacknowledged(app.config["REDISPATCH_AFTER"])
                app.extensions["tether_delivery"].catch_up_all()
            except Exception:  # the loop must outlive a database blip
                log.exception("presence sweep failed")
                db.session.rollback()
            finally:
                db.session.remove()


def start(app, writer):
    if not app.extensions.get("tether_presence_started"):
        app.extensions["tether_presence_started"] = True
        socketio.start_background_task(run_presence_loop, app, writer)


def current_writer():
    return current_app.extensions["tether_writer"]
