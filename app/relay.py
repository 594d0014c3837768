"""What the relay does for each event, called by the Socket.IO namespaces with plain values.

The namespaces (app/sockets) validate and rate-limit, then call these functions;
tests call them directly as well. Errors are raised as ProtocolError and answered
by the caller in the contract's shape. Messages leave through app/outbound.py,
commands change state through app/commands.py, chunks are stored by app/storage.py.
"""

import contextlib
import logging
import threading
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy.exc import IntegrityError

from app import SERVER_ID, access, accounts, attachments, commands, current_services, db, notify, outbound
from app.models import Agent, ChatSession, Command, PermissionRequest, User, utcnow
from app.storage import ChunkIn, close_command
from protocol import ProtocolError, messages, ok_reply

log = logging.getLogger("tether.relay")
TITLE_CHARS = 80


# -- access ----------------------------------------------------------------------


def agent_command_owner(agent_id, command_id, session_id):
    """The session of a command the agent may write to; forbidden for anyone else's."""
    command = db.session.get(Command, command_id)
    if command is None or command.agent_id != agent_id or command.session_id != session_id:
        raise ProtocolError("forbidden", "that command was not sent to this agent")
    return command.session_id


# -- /web ------------------------------------------------------------------------


def execute_command(user_id, message, sid):
    """Start or continue a session with a command for the project's agent."""
    repeat = _previous_answer(user_id, message.get("clientMessageId"), sid)
    if repeat:
        return repeat
    project = access.project_for(user_id, message["projectId"], "operate")
    agent = project.agent
    if not agent.online or not agent.usable():
        raise ProtocolError("agent_offline", f"agent {agent.name} is offline")
    _check_working_directory(message)
    files = attachments.decoded(message)  # refused (too_large, invalid) before anything is stored or sent
    with _ADMISSION:
        _lock_admission_rows(user_id, agent.id)
        session = _session_for(user_id, project, message)
        _check_limits(user_id, agent)
        command = _new_command(user_id, agent, project, session, message, files)
        # The sender follows the session before anything of it is announced.
        _follow(sid, session)
        session_id = session.id
        try:
            db.session.commit()
        except IntegrityError:  # the same clientMessageId raced in from another socket
            db.session.rollback()
            if "sessionId" not in message:
                _unfollow(sid, session_id)  # the new session was never created
            return _previous_answer(user_id, message.get("clientMessageId"), sid)
    _dispatch(agent, session, project, command)
    return ok_reply(sessionId=session.id, commandId=command.id)


# Admission (session busy, running limits, the new row) is one step per process, and,
# across processes, holds the user's and the agent's rows (PostgreSQL) until it commits:
# simultaneous execute_commands from several sockets never overshoot a limit.
_ADMISSION = threading.Lock()


def _lock_admission_rows(user_id, agent_id):
    db.session.execute(db.select(User.id).filter_by(id=user_id).with_for_update())
    db.session.execute(db.select(Agent.id).filter_by(id=agent_id).with_for_update())


def _new_command(user_id, agent, project, session, message, files):
    # A model applies to its command and to the session's next ones until another is named.
    session.model = message.get("model") or session.model
    command = Command(
        session_id=session.id,
        user_id=user_id,
        agent_id=agent.id,
        text=message["command"],
        working_directory=message.get("workingDirectory") or project.path,
        client_message_id=message.get("clientMessageId"),
        model=session.model,
        permission_mode=message.get("permissionMode"),
    )
    db.session.add(command)
    accounts.audit(project.id, user_id, "run", _run_detail(command, project))
    db.session.flush()
    described = attachments.store(command.id, files)
    queued = messages.command_state(
        session.id,
        command.id,
        "queued",
        command.text,
        _username(user_id),
        command.model,
        described,
        command.permission_mode,
    )
    outbound.after_commit(db.session, outbound.to_session, queued)
    return command


def _follow(sid, session):
    """Subscribe the sender of a command to its session, from now on."""
    with contextlib.suppress(KeyError):  # the socket disconnected meanwhile
        outbound.join_session(sid, session.id)
        current_services().delivery.follow_from(sid, session.id, session.last_seq)


def _unfollow(sid, session_id):
    current_services().delivery.unsubscribe(sid, session_id)
    outbound.leave_session(sid, session_id)


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
    if command.state == "queued" and session.project.agent.online:
        _dispatch(session.project.agent, session, session.project, command)
    if sid:
        _follow(sid, session)
    return ok_reply(sessionId=command.session_id, commandId=command.id, repeated=True)


def _session_for(user_id, project, message):
    if "sessionId" not in message:
        session = ChatSession(project_id=project.id, title=_title(message["command"]))
        db.session.add(session)
        db.session.flush()
        return session
    session = access.session_for(user_id, message["sessionId"], "operate")
    if session.project_id != project.id:
        raise ProtocolError("not_found", "that session belongs to another project")
    if commands.active_in_session(session.id):
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
    if commands.count_active(user_id=user_id) >= config["MAX_RUNNING_PER_USER"]:
        raise ProtocolError("rate_limited", "too many commands running for this user")
    if commands.count_active(agent_id=agent.id) >= config["MAX_RUNNING_PER_AGENT"]:
        raise ProtocolError("rate_limited", "too many commands running on this agent")


def _dispatch(agent, session, project, command):
    """Send the command to its agent; the agent's acknowledgement moves it along."""
    options = {"workingDirectory": command.working_directory}
    if session.claude_session_id:
        options["resume"] = session.claude_session_id
    mode = command.permission_mode or project.permission_mode
    if mode and mode != "default":
        options["permissionMode"] = mode
    if command.model:
        options["model"] = command.model
    files = attachments.for_agent(command.id)
    payload = messages.agent_command(session.id, command.id, command.text, options, files)
    app = current_app._get_current_object()
    command_id = command.id

    def acknowledged(reply=None):
        with app.app_context():
            _agent_answered(command_id, reply)

    commands.move_by_id(command_id, "sent", only_from=("queued",))
    outbound.to_agent(agent.sid, payload, callback=acknowledged)


def redispatch_unacknowledged(app):
    """Send again the commands our agents never acknowledged (lost between processes).

    A scheduled job. Only the process holding the agent's socket does it, so the
    emit is local. The agent answers a command id it already has without running it twice.
    """
    cutoff = utcnow() - timedelta(seconds=app.config["REDISPATCH_AFTER"])
    stuck = db.session.scalars(
        db.select(Command)
        .join(Agent, Agent.id == Command.agent_id)
        .filter(Command.state == "sent", Command.created_at < cutoff, Agent.server_id == SERVER_ID)
    ).all()
    for command in stuck:
        session = command.session
        log.info("command %s was never acknowledged; sending it again", command.id)
        _dispatch(db.session.get(Agent, command.agent_id), session, session.project, command)


def _agent_answered(command_id, reply):
    if isinstance(reply, dict) and reply.get("ok"):
        commands.move_by_id(command_id, "running", only_from=("queued", "sent"))
        return
    error = reply.get("error") if isinstance(reply, dict) else None
    code = "claude_error" if not error else error.get("code", "claude_error")
    text = (error or {}).get("message") or "The agent refused the command."
    close_command(command_id, code, text)


def subscribe(user_id, message, sid, link_session_id=None):
    """Replay the session after afterSeq, then follow it live; re-send pending permissions.

    `user_id` None: a read-only link's socket, which may follow its own session only.
    """
    session = access.session_for_reader(user_id, link_session_id, message["sessionId"])
    pending = [request.to_wire() for request in _pending_permissions(session.id)]
    # A replay may wait for the browser to read: it must not hold a pooled connection meanwhile.
    db.session.close()
    outbound.join_session(sid, session.id)
    last_seq = current_services().delivery.subscribe(sid, session.id, message["afterSeq"])
    for request in pending:
        outbound.to_browser(sid, request)
    return ok_reply(lastSeq=last_seq)


def unsubscribe(user_id, message, sid, link_session_id=None):
    session = access.session_for_reader(user_id, link_session_id, message["sessionId"])
    _unfollow(sid, session.id)
    return ok_reply()


def cancel_command(user_id, message):
    """Interrupt the session's running command."""
    session = access.session_for(user_id, message["sessionId"], "operate")
    command = commands.active_in_session(session.id)
    if command is None:
        raise ProtocolError("not_found", "nothing is running in this session")
    accounts.audit(session.project_id, user_id, "stop", command.id)
    db.session.commit()
    agent = db.session.get(Agent, command.agent_id)
    if not agent.online:
        # Nobody to tell: end it here so the session is usable again.
        close_command(command.id, "interrupted", "Stopped while the agent was offline.")
        return ok_reply(commandId=command.id)
    outbound.to_agent(agent.sid, messages.agent_cancel(session.id, command.id))
    return ok_reply(commandId=command.id)


def permission_response(user_id, message):
    """Answer a pending tool permission; the first answer wins."""
    session = access.session_for(user_id, message["sessionId"], "operate")
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
    resolved = messages.permission_resolved(session.id, request.id, request.decision, by=_username(user_id))
    outbound.after_commit(db.session, outbound.to_session, resolved)
    notify.session_changed(session.id)
    db.session.commit()
    _tell_agent_permission(request)
    return ok_reply(decision=request.decision)


def _tell_agent_permission(request):
    agent = db.session.get(Agent, db.session.get(Command, request.command_id).agent_id)
    if not agent.online:
        return  # the agent asks again when it reconnects, and gets the stored answer
    outbound.to_agent(agent.sid, permission_answer(request))


def permission_answer(request):
    return messages.agent_permission_response(
        request.session_id, request.command_id, request.id, request.decision, request.message
    )


def _username(user_id):
    return db.session.get(User, user_id).username


def _brief(value, limit=300):
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pending_permissions(session_id):
    return db.session.scalars(
        db.select(PermissionRequest).filter_by(session_id=session_id, decision=None)
    ).all()


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
    # handlers waiting while holding theirs could empty the pool under it. Most chunks never
    # opened a session (ownership is cached per socket): making one only to close it cost a
    # quarter of the handler.
    if db.session.registry.has():
        db.session.close()
    outcome = current_services().writer.store(chunk)
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
    notify.permission_requested(request)
    outbound.to_session(request.to_wire())
    return ok_reply()


def heartbeat(agent_id, message, missing_since):
    """End the commands the agent no longer knows, once it has said so for a while.

    A heartbeat can be older than a command's dispatch or its last result (it
    crossed them on the way), so one heartbeat without a command proves nothing.
    `missing_since` (command id -> when first missing, kept per agent socket) is
    updated in place; a command is given up only when still missing
    HEARTBEAT_GRACE seconds after a heartbeat first lacked it.
    """
    now = time.monotonic()
    grace = current_app.config["HEARTBEAT_GRACE"]
    reported = set(message["running"])
    running = db.session.scalars(
        db.select(Command.id).filter(Command.agent_id == agent_id, Command.state == "running")
    ).all()
    missing = {command_id for command_id in running if command_id not in reported}
    for command_id in list(missing_since):
        if command_id not in missing:
            del missing_since[command_id]
    for command_id in missing:
        first = missing_since.setdefault(command_id, now)
        if now - first >= grace:
            del missing_since[command_id]
            close_command(command_id, "agent_lost", "The agent restarted during this command.")
    return ok_reply()
