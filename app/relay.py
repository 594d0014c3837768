"""What the relay does for each event, with no socket in sight.

The Socket.IO namespaces (app/sockets) validate and rate-limit, then call these
functions with plain values; tests can call them directly as well. Errors are
raised as ProtocolError and answered by the caller in the contract's shape.
"""

import contextlib
import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from app import SERVER_ID, accounts, db, socketio
from app.models import (
    ACTIVE_STATES,
    Agent,
    ChatSession,
    Command,
    PermissionRequest,
    Project,
    utcnow,
)
from app.presence import end_command
from app.storage import ChunkIn
from protocol import AGENT_NAMESPACE, WEB_NAMESPACE, Events, ProtocolError, ok_reply

log = logging.getLogger("tether.relay")
TITLE_CHARS = 80


def writer():
    return current_app.extensions["tether_writer"]


def delivery():
    return current_app.extensions["tether_delivery"]


# -- ownership -----------------------------------------------------------------


def owned_project(user_id, project_id):
    project = db.session.get(Project, project_id)
    if project is None or project.user_id != user_id:
        raise ProtocolError("not_found", "no such project")
    return project


def owned_session(user_id, session_id):
    session = db.session.get(ChatSession, session_id)
    if session is None or session.project.user_id != user_id:
        raise ProtocolError("not_found", "no such session")
    return session


def agent_command_owner(agent_id, command_id, session_id):
    """The session of a command the agent may write to; forbidden for anyone else's."""
    command = db.session.get(Command, command_id)
    if command is None or command.agent_id != agent_id or command.session_id != session_id:
        raise ProtocolError("forbidden", "that command was not sent to this agent")
    return command.session_id


def _active_command(session_id):
    return db.session.scalar(
        db.select(Command).filter(Command.session_id == session_id, Command.state.in_(ACTIVE_STATES))
    )


def _count_active(**filters):
    return db.session.scalar(
        db.select(db.func.count(Command.id)).filter_by(**filters).filter(Command.state.in_(ACTIVE_STATES))
    )


# -- /web ------------------------------------------------------------------------


def execute_command(user_id, message, sid):
    """Start or continue a session with a command for the project's agent."""
    repeat = _previous_answer(user_id, message.get("clientMessageId"), sid)
    if repeat:
        return repeat
    project = owned_project(user_id, message["projectId"])
    agent = project.agent
    if not agent.online or not agent.usable():
        raise ProtocolError("agent_offline", f"agent {agent.name} is offline")
    _check_working_directory(message)
    session = _session_for(user_id, project, message)
    _check_limits(user_id, agent)
    command = Command(
        session_id=session.id,
        user_id=user_id,
        agent_id=agent.id,
        text=message["command"],
        working_directory=message.get("workingDirectory") or project.path,
        client_message_id=message.get("clientMessageId"),
    )
    db.session.add(command)
    accounts.audit(project.id, user_id, "run", _run_detail(command, project))
    try:
        db.session.commit()
    except IntegrityError:  # the same clientMessageId raced in from another socket
        db.session.rollback()
        return _previous_answer(user_id, message.get("clientMessageId"), sid)
    emit_command_state(session.id, command.id, "queued", text=command.text)
    # Dispatch first: the sender's socket may already be gone, the command must still run.
    _dispatch(agent, session, project, command)
    _follow(sid, session)
    return ok_reply(sessionId=session.id, commandId=command.id)


def _follow(sid, session):
    """Subscribe the sender of a command to its session, from now on."""
    with contextlib.suppress(KeyError):  # the socket disconnected meanwhile
        socketio.server.enter_room(sid, f"session:{session.id}", namespace=WEB_NAMESPACE)
        delivery().follow_from(sid, session.id, session.last_seq)


def _previous_answer(user_id, client_message_id, sid=None):
    """The first answer to a repeated clientMessageId; a command still queued is sent now."""
    if not client_message_id:
        return None
    command = db.session.scalar(
        db.select(Command).filter_by(user_id=user_id, client_message_id=client_message_id)
    )
    if command is None:
        return None
    session = command.session
    if command.state == "queued" and command.session.project.agent.online:
        _dispatch(command.session.project.agent, session, session.project, command)
    if sid:
        _follow(sid, session)
    return ok_reply(sessionId=command.session_id, commandId=command.id, repeated=True)


def emit_command_state(session_id, command_id, state, text=None):
    """Tell the session's browsers where a command stands (queued, sent, running, ...)."""
    message = {"type": "command_state", "sessionId": session_id, "commandId": command_id, "state": state}
    if text is not None:
        message["text"] = text
    socketio.emit("command_state", message, to=f"session:{session_id}", namespace=WEB_NAMESPACE)


def _session_for(user_id, project, message):
    if "sessionId" not in message:
        session = ChatSession(project_id=project.id, title=_title(message["command"]))
        db.session.add(session)
        db.session.flush()
        return session
    session = owned_session(user_id, message["sessionId"])
    if session.project_id != project.id:
        raise ProtocolError("not_found", "that session belongs to another project")
    if _active_command(session.id):
        raise ProtocolError("session_busy", "a command is already running in this session")
    return session


def _title(text):
    line = text.strip().splitlines()[0] if text.strip() else "Untitled"
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


def _check_working_directory(message):
    # The column is narrower than the wire contract's bound; PostgreSQL would refuse it.
    limit = Command.working_directory.type.length
    if len(message.get("workingDirectory") or "") > limit:
        raise ProtocolError(
            "invalid_message",
            "invalid execute_command message",
            fields={"workingDirectory": [f"Longer than maximum length {limit}."]},
        )


def _run_detail(command, project):
    """What the audit log says was run: the text, and where when not the project's directory."""
    where = "" if command.working_directory == project.path else f"[in {command.working_directory}] "
    return where + command.text[:1000]


def _check_limits(user_id, agent):
    config = current_app.config
    if _count_active(user_id=user_id) >= config["MAX_RUNNING_PER_USER"]:
        raise ProtocolError("rate_limited", "too many commands running for this user")
    if _count_active(agent_id=agent.id) >= config["MAX_RUNNING_PER_AGENT"]:
        raise ProtocolError("rate_limited", "too many commands running on this agent")


def _dispatch(agent, session, project, command):
    """Send the command to its agent; the agent's acknowledgement moves it along."""
    options = {"workingDirectory": command.working_directory}
    if session.claude_session_id:
        options["resume"] = session.claude_session_id
    if project.permission_mode and project.permission_mode != "default":
        options["permissionMode"] = project.permission_mode
    payload = {
        "type": Events.AGENT_COMMAND,
        "sessionId": session.id,
        "commandId": command.id,
        "command": command.text,
        "options": options,
    }
    app = current_app._get_current_object()
    session_id, command_id = session.id, command.id

    def acknowledged(reply=None):
        with app.app_context():
            _agent_answered(app, session_id, command_id, reply)

    _set_state(session.id, command_id, "sent", ("queued",))
    socketio.emit(
        Events.AGENT_COMMAND,
        payload,
        to=agent.sid,
        namespace=AGENT_NAMESPACE,
        callback=acknowledged,
    )


def redispatch_unacknowledged(after_seconds):
    """Send again the commands our agents never acknowledged (lost between processes).

    Only the process holding the agent's socket does it, so the emit is local.
    The agent answers a command id it already has without running it twice.
    """
    cutoff = utcnow() - timedelta(seconds=after_seconds)
    stuck = db.session.scalars(
        db.select(Command)
        .join(Agent, Agent.id == Command.agent_id)
        .filter(Command.state == "sent", Command.created_at < cutoff, Agent.server_id == SERVER_ID)
    ).all()
    for command in stuck:
        session = command.session
        log.info("command %s was never acknowledged; sending it again", command.id)
        _dispatch(db.session.get(Agent, command.agent_id), session, session.project, command)


def _agent_answered(app, session_id, command_id, reply):
    if isinstance(reply, dict) and reply.get("ok"):
        _set_state(session_id, command_id, "running", ("queued", "sent"))
        return
    error = (reply or {}).get("error") if isinstance(reply, dict) else None
    code = "claude_error" if not error else error.get("code", "claude_error")
    text = (error or {}).get("message") or "The agent refused the command."
    end_command(app.extensions["tether_writer"], command_id, code, text)


def _set_state(session_id, command_id, state, only_from):
    changed = db.session.execute(
        update(Command).where(Command.id == command_id, Command.state.in_(only_from)).values(state=state)
    ).rowcount
    db.session.commit()
    if changed:
        emit_command_state(session_id, command_id, state)


def subscribe(user_id, message, sid):
    """Replay the session after afterSeq, then follow it live; re-send pending permissions."""
    session = owned_session(user_id, message["sessionId"])
    socketio.server.enter_room(sid, f"session:{session.id}", namespace=WEB_NAMESPACE)
    last_seq = delivery().subscribe(sid, session.id, message["afterSeq"])
    for request in _pending_permissions(session.id):
        socketio.emit(Events.PERMISSION_REQUEST, request.to_wire(), to=sid, namespace=WEB_NAMESPACE)
    return ok_reply(lastSeq=last_seq)


def unsubscribe(user_id, message, sid):
    session = owned_session(user_id, message["sessionId"])
    delivery().unsubscribe(sid, session.id)
    socketio.server.leave_room(sid, f"session:{session.id}", namespace=WEB_NAMESPACE)
    return ok_reply()


def cancel_command(user_id, message):
    """Interrupt the session's running command."""
    session = owned_session(user_id, message["sessionId"])
    command = _active_command(session.id)
    if command is None:
        raise ProtocolError("not_found", "nothing is running in this session")
    accounts.audit(session.project_id, user_id, "stop", command.id)
    db.session.commit()
    agent = db.session.get(Agent, command.agent_id)
    if not agent.online:
        # Nobody to tell: end it here so the session is usable again.
        end_command(writer(), command.id, "interrupted", "Stopped while the agent was offline.")
        return ok_reply(commandId=command.id)
    payload = {"type": Events.CANCEL_COMMAND, "sessionId": session.id, "commandId": command.id}
    socketio.emit(Events.CANCEL_COMMAND, payload, to=agent.sid, namespace=AGENT_NAMESPACE)
    return ok_reply(commandId=command.id)


def permission_response(user_id, message):
    """Answer a pending tool permission; the first answer wins."""
    session = owned_session(user_id, message["sessionId"])
    request = db.session.get(PermissionRequest, message["requestId"])
    if request is None or request.session_id != session.id:
        raise ProtocolError("not_found", "no such permission request")
    if request.decision is not None:
        return ok_reply(decision=request.decision, alreadyDecided=True)
    request.decision = message["decision"]
    request.message = message.get("message")
    request.decided_by = user_id
    request.decided_at = utcnow()
    detail = f"{request.decision} {request.tool_name}: {_brief(request.input)}"
    accounts.audit(session.project_id, user_id, "permission", detail)
    db.session.commit()
    _tell_agent_permission(request)
    resolved = {
        "type": "permission_resolved",
        "sessionId": session.id,
        "requestId": request.id,
        "decision": request.decision,
    }
    socketio.emit("permission_resolved", resolved, to=f"session:{session.id}", namespace=WEB_NAMESPACE)
    return ok_reply(decision=request.decision)


def _tell_agent_permission(request):
    agent = db.session.get(Agent, db.session.get(Command, request.command_id).agent_id)
    if not agent.online:
        return  # the agent asks again when it reconnects, and gets the stored answer
    socketio.emit(
        Events.PERMISSION_RESPONSE,
        permission_answer(request),
        to=agent.sid,
        namespace=AGENT_NAMESPACE,
    )


def permission_answer(request):
    answer = {
        "type": Events.PERMISSION_RESPONSE,
        "sessionId": request.session_id,
        "commandId": request.command_id,
        "requestId": request.id,
        "decision": request.decision,
    }
    if request.message:
        answer["message"] = request.message
    return answer


def _brief(value, limit=300):
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pending_permissions(session_id):
    return db.session.scalars(
        db.select(PermissionRequest).filter_by(session_id=session_id, decision=None)
    ).all()


def agent_statuses(user_id):
    from app.presence import status_message

    agents = db.session.scalars(db.select(Agent).filter_by(user_id=user_id, revoked_at=None))
    return [status_message(agent) for agent in agents]


# -- /agent ------------------------------------------------------------------------


def store_response(message):
    """Store one chunk from an agent (ownership already checked); ack once stored."""
    chunk = ChunkIn(
        command_id=message["commandId"],
        agent_seq=message["seq"],
        data=message["data"],
        is_complete=message["isComplete"],
        event=message.get("event"),
        error=message.get("error"),
    )
    # Hand our pooled connection back before waiting: the writer needs one, and many
    # handlers waiting while holding theirs could empty the pool under it.
    db.session.close()
    outcome = writer().store(chunk)
    if outcome in ("stored", "duplicate", "ignored"):
        return ok_reply(outcome=outcome)
    raise ProtocolError("internal", "the chunk could not be stored; send it again")


def permission_request(message):
    """Record a tool permission request and show it to the session's browsers."""
    request = db.session.get(PermissionRequest, message["requestId"])
    if request is not None and request.command_id != message["commandId"]:
        # Request ids are global: another agent's request is neither shown nor answered.
        raise ProtocolError("forbidden", "that permission request belongs to another command")
    if request is None:
        request = PermissionRequest(
            id=message["requestId"],
            session_id=message["sessionId"],
            command_id=message["commandId"],
            tool_name=message["toolName"],
            input=message["input"],
        )
        db.session.add(request)
        db.session.commit()
    elif request.decision is not None:
        # Asked again after a reconnect: it was answered while the agent was away.
        return ok_reply(decision=request.decision, message=request.message)
    socketio.emit(
        Events.PERMISSION_REQUEST,
        request.to_wire(),
        to=f"session:{request.session_id}",
        namespace=WEB_NAMESPACE,
    )
    return ok_reply()


def heartbeat(agent_id, message):
    """Commands the server thinks run on this agent but the agent does not know are lost."""
    running = set(message["running"])
    lost = db.session.scalars(
        db.select(Command).filter(Command.agent_id == agent_id, Command.state == "running")
    ).all()
    for command in lost:
        if command.id not in running:
            end_command(writer(), command.id, "agent_lost", "The agent restarted during this command.")
    return ok_reply()
