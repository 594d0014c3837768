"""/agent: agent processes, authenticated by their token."""

import logging
from dataclasses import dataclass, field

from flask import current_app, request
from flask_socketio import ConnectionRefusedError

from app import current_services, db, outbound, presence, relay
from app.limits import TokenBucket
from app.models import Agent, hash_token
from app.sockets import GuardedNamespace, inbound
from protocol import AGENT_NAMESPACE, PROTOCOL_VERSION, Events

log = logging.getLogger("tether.sockets")


@dataclass
class AgentSocket:
    agent_id: str
    # The token this socket logged in with: a rotated token cuts the socket off.
    token_hash: str = field(repr=False)
    bucket: TokenBucket = field(repr=False)
    # command id -> session id, for commands this agent may write to: one query
    # per command, not one per chunk.
    commands: dict = field(default_factory=dict)
    # command id -> when a heartbeat first lacked it (relay.heartbeat).
    missing_since: dict = field(default_factory=dict)

    def check_command(self, message):
        command_id = message["commandId"]
        if self.commands.get(command_id) != message["sessionId"]:
            self.commands[command_id] = relay.agent_command_owner(
                self.agent_id, command_id, message["sessionId"]
            )

    def still_valid(self, agent, now=None):
        return agent is not None and agent.usable(now) and agent.token_hash == self.token_hash


class AgentNamespace(GuardedNamespace):
    # An agent's events need no cookie, URL or login session, only the app: Flask's request
    # context (URL matching, session, signals) was a quarter of the server's CPU per chunk.
    # Connecting still runs in one, for the token and the address in the update hint.
    events_need_request = False

    def __init__(self):
        super().__init__(AGENT_NAMESPACE)

    def on_connect(self, auth=None):
        """Accept a valid, unrevoked token speaking our protocol version."""
        agent = _authenticate(auth)
        # Agents stream far more than people type: a looser bucket than browsers'.
        config = current_app.config
        bucket = TokenBucket(config["RATE_LIMIT_PER_SECOND"] * 50, config["RATE_LIMIT_BURST"] * 50)
        self.sockets[request.sid] = AgentSocket(agent.id, agent.token_hash, bucket)
        outbound.join_agent(request.sid, agent.id)
        presence.agent_connected(agent, request.sid, auth)

    def on_disconnect(self, reason=None):
        socket = self.sockets.pop(request.sid, None)
        if socket:
            presence.agent_disconnected(socket.agent_id, request.sid)

    def cut_off_invalid(self, now=None):
        """Disconnect this process's sockets whose token was revoked, rotated or has expired."""
        sockets = list(self.sockets.items())
        if not sockets:
            return []
        ids = {socket.agent_id for _, socket in sockets}
        agents = {agent.id: agent for agent in db.session.scalars(db.select(Agent).filter(Agent.id.in_(ids)))}
        stale = [sid for sid, socket in sockets if not socket.still_valid(agents.get(socket.agent_id), now)]
        for sid in stale:
            log.info("agent socket %s: its token was revoked, rotated or has expired; cutting it off", sid)
            outbound.disconnect_agent(sid)
        return stale

    @inbound("server", Events.COMMAND_RESPONSE)
    def on_command_response(self, socket, message):
        """Store a chunk of a command's output and fan it out."""
        socket.check_command(message)
        return relay.store_response(message)

    @inbound("server", Events.PERMISSION_REQUEST)
    def on_permission_request(self, socket, message):
        """Ask the session's browsers whether a tool may run."""
        socket.check_command(message)
        return relay.permission_request(message)

    @inbound("server", Events.AGENT_HEARTBEAT)
    def on_agent_heartbeat(self, socket, message):
        """Reconcile what the agent runs with what the server thinks it runs."""
        return relay.heartbeat(socket.agent_id, message, socket.missing_since)


def cut_off_invalid_agents(app):
    """A scheduled job: cut off agents whose token stopped being valid, within TOKEN_CHECK_INTERVAL.

    `flask agents revoke` and `rotate` may run in another process: without a message
    queue they cannot reach this process's sockets, so this process looks itself.
    """

    current_services(app).agent_namespace.cut_off_invalid()


def _authenticate(auth):
    if not isinstance(auth, dict) or not isinstance(auth.get("token"), str):
        raise ConnectionRefusedError("no token given", {"code": "unauthorized"})
    version = auth.get("protocolVersion")
    if version != PROTOCOL_VERSION:
        raise ConnectionRefusedError(
            f"protocol version {version!r} is not supported; this server speaks {PROTOCOL_VERSION}. "
            + _update_hint(),
            {"code": "protocol_mismatch"},
        )
    agent = db.session.scalar(db.select(Agent).filter_by(token_hash=hash_token(auth["token"])))
    if agent is None or not agent.usable():
        raise ConnectionRefusedError("unknown, revoked or expired token", {"code": "unauthorized"})
    _check_auth_fields(auth)
    return agent


def _check_auth_fields(auth):
    for key, limit in (("name", 64), ("hostname", 255), ("version", 64)):
        value = auth.get(key)
        if value is not None and not (isinstance(value, str) and len(value) <= limit):
            raise ConnectionRefusedError(f"bad auth.{key}", {"code": "invalid_message"})
    roots = auth.get("roots", [])
    if (
        not isinstance(roots, list)
        or len(roots) > 64
        or not all(isinstance(root, str) and len(root) <= 4096 for root in roots)
    ):
        raise ConnectionRefusedError("bad auth.roots", {"code": "invalid_message"})


def _update_hint():
    """How to bring an agent installed from this server's wheel up to date (issue 17)."""
    from app import agent_dist

    command = agent_dist.update_command(request.host_url, agent_dist.current(current_app))
    return f"Update the agent with `{command}` and start it again."
