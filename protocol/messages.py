"""Builders for every message the server sends, to browsers and to agents.

The server never spells a payload by hand: it calls one of these, so each
message's shape lives here. tests/test_protocol.py checks each builder against
its schema in protocol/schemas.py ("browser" and "agent" audiences). Builders
that look alike (an optional field added when given) are still one per message.
"""

from protocol.events import Events


def command_result(session_id, command_id, seq, response, status, event=None, error=None):
    """One stored chunk of a command's output, as browsers receive it."""
    message = {
        "type": Events.COMMAND_RESULT,
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


def command_state(
    session_id, command_id, state, text=None, by=None, model=None, attachments=None, permission_mode=None
):
    """Where a command stands (queued, sent, running, done, failed, stopped).

    `queued` says what and who, and with which model, mode (plan, when the command alone asked
    for it) and attachments (their
    descriptions: the bytes are served by GET /api/commands/<id>/attachments/<index>).
    """
    message = {
        "type": Events.COMMAND_STATE,
        "sessionId": session_id,
        "commandId": command_id,
        "state": state,
    }
    if text is not None:
        message["text"] = text
    if by is not None:
        message["by"] = by
    if model is not None:
        message["model"] = model
    if attachments:
        message["attachments"] = attachments
    if permission_mode is not None:
        message["permissionMode"] = permission_mode
    return message


def permission_request(session_id, command_id, request_id, tool_name, tool_input):
    """A tool call waiting for a user's answer (to browsers, as the agent asked it)."""
    return {
        "type": Events.PERMISSION_REQUEST,
        "sessionId": session_id,
        "commandId": command_id,
        "requestId": request_id,
        "toolName": tool_name,
        "input": tool_input,
    }


def permission_resolved(session_id, request_id, decision, by=None):
    """A permission request was answered (by a username), or expired."""
    message = {
        "type": Events.PERMISSION_RESOLVED,
        "sessionId": session_id,
        "requestId": request_id,
        "decision": decision,
    }
    if by is not None:
        message["by"] = by
    return message


def session_activity(
    session_id, project_id, project_name, agent_name, title, state, since=None, tool_name=None
):
    """Where a session stands for its users (the dashboard's "needs you" and running lists).

    `state` is `waiting` (a permission request is pending; `toolName` says for what), `running`
    or `idle`; `since` is when it started waiting or running (ISO-8601 UTC), absent when idle.
    """
    message = {
        "type": Events.SESSION_ACTIVITY,
        "sessionId": session_id,
        "projectId": project_id,
        "projectName": project_name,
        "agentName": agent_name,
        "title": title,
        "state": state,
    }
    if since is not None:
        message["since"] = since
    if tool_name is not None:
        message["toolName"] = tool_name
    return message


def agent_status(agent_id, name, online, version=None, demo=False):
    """An agent's presence; `version` is what it reported when it connected and `demo` whether
    it answers with the scripted demo model (Tether's additions)."""
    return {
        "type": Events.AGENT_STATUS,
        "agentId": agent_id,
        "name": name,
        "online": online,
        "version": version,
        "demo": demo,
    }


# -- to agents ----------------------------------------------------------------


def agent_command(session_id, command_id, command, options, attachments=None):
    """A command to run; `attachments` [{name, mediaType, data (base64)}] go to the model with it."""
    message = {
        "type": Events.AGENT_COMMAND,
        "sessionId": session_id,
        "commandId": command_id,
        "command": command,
        "options": options,
    }
    if attachments:
        message["attachments"] = attachments
    return message


def workspace_request(request_id, project_path, op, path=""):
    """Ask an agent to list, read or diff in a project directory; it answers in the acknowledgement."""
    return {
        "type": Events.WORKSPACE_REQUEST,
        "requestId": request_id,
        "projectPath": project_path,
        "op": op,
        "path": path,
    }


def agent_cancel(session_id, command_id):
    return {"type": Events.CANCEL_COMMAND, "sessionId": session_id, "commandId": command_id}


def agent_permission_response(session_id, command_id, request_id, decision, message=None):
    answer = {
        "type": Events.PERMISSION_RESPONSE,
        "sessionId": session_id,
        "commandId": command_id,
        "requestId": request_id,
        "decision": decision,
    }
    if message:
        answer["message"] = message
    return answer
