"""What needs a user: sessions waiting for them or running, shown live on the dashboard and pushed.

Where things happen, one line hands an event to the Notifier, and nothing more:

| where | hook | when it runs |
|---|---|---|
| `relay.permission_request` | `permission_requested(request)` | at once (the request is committed) |
| `relay.permission_response` | `session_changed(session_id)` | after the commit |
| `commands.move` | `command_moved(command)` | after the commit |
| `storage._expire_permission` | `session_changed(session_id)` | after the commit |

The Notifier is one background task per process. For each event it reads the
session as committed, sends `session_activity` to the `user:<id>` room of each
recipient (the dashboard's "needs you" and running lists) and decides on a Web
Push (app/push.py): a permission request still pending, or a command that ended
after running at least PUSH_LONG_RUN_SECONDS, to users whose settings want it.
"""

import json
import logging

from flask import current_app

from app import current_services, db, outbound, push
from app.background import QueueTasks, end_session
from app.models import ChatSession, Command, PermissionRequest, Project, ProjectMember
from protocol import messages
from protocol.states import ACTIVE_STATES, FINAL_STATES

log = logging.getLogger("tether.notify")
PERMISSION_TTL = 3600  # a permission push that waits longer at the push service is not worth showing
ENDED_TTL = 86400
ENDED_TITLES = {
    "done": "Claude Code finished",
    "failed": "Claude Code failed",
    "stopped": "Claude Code stopped",
}


# -- who -------------------------------------------------------------------------------------


def recipients(project):
    """The ids of the users who may act on the project's sessions: its owner and its operators."""
    operators = db.session.scalars(
        db.select(ProjectMember.user_id).filter_by(project_id=project.id, role="operator")
    ).all()
    return [project.user_id, *operators]


def projects_of(user_id):
    """The ids of the projects whose sessions `user_id` may act on: the inverse of `recipients`."""
    operated = db.select(ProjectMember.project_id).filter_by(user_id=user_id, role="operator")
    return db.select(Project.id).filter((Project.user_id == user_id) | Project.id.in_(operated))


# -- the hooks ---------------------------------------------------------------------------------


def permission_requested(request):
    """A permission request was recorded, or asked again by a reconnecting agent."""
    _queue({"type": "permission", "sessionId": request.session_id, "requestId": request.id})


def session_changed(session_id):
    """Something about the session's pending permissions changed in this transaction."""
    outbound.after_commit(db.session, _queue, {"type": "session", "sessionId": session_id})


def command_moved(command):
    """The command moved to a new state in this transaction."""
    event = {
        "type": "command",
        "sessionId": command.session_id,
        "commandId": command.id,
        "state": command.state,
    }
    outbound.after_commit(db.session, _queue, event)


def _queue(event):
    current_services().notifier.put(event)


# -- the dashboard ---------------------------------------------------------------------------------


def _iso(moment):
    return moment.isoformat(timespec="seconds") + "Z"


def activity(session):
    """The `session_activity` message of a session, as committed now."""
    project = session.project
    pending = db.session.scalar(
        db.select(PermissionRequest)
        .join(Command, Command.id == PermissionRequest.command_id)
        .filter(
            PermissionRequest.session_id == session.id,
            PermissionRequest.decision.is_(None),
            Command.state.in_(ACTIVE_STATES),
        )
        .order_by(PermissionRequest.created_at)
        .limit(1)
    )
    running = db.session.scalar(
        db.select(Command)
        .filter(Command.session_id == session.id, Command.state.in_(ACTIVE_STATES))
        .order_by(Command.created_at)
        .limit(1)
    )
    args = (session.id, project.id, project.name, project.agent.name, session.title or "Untitled")
    if pending is not None:
        return messages.session_activity(*args, "waiting", _iso(pending.created_at), pending.tool_name)
    if running is not None:
        return messages.session_activity(*args, "running", _iso(running.created_at))
    return messages.session_activity(*args, "idle")


def activities_for(user_id):
    """Every session of the user's that waits for them or runs, waiting ones first, oldest first."""
    sessions = db.session.scalars(
        db.select(ChatSession)
        .join(Command, Command.session_id == ChatSession.id)
        .filter(ChatSession.project_id.in_(projects_of(user_id)), Command.state.in_(ACTIVE_STATES))
        .distinct()
    ).all()
    found = [activity(session) for session in sessions]
    found = [message for message in found if message["state"] != "idle"]
    return sorted(found, key=lambda m: (m["state"] != "waiting", m.get("since", "")))


# -- the pushes ----------------------------------------------------------------------------------------


def session_url(session):
    """Where a notification's click goes: the chat page with the session open."""
    return f"/projects/{session.project_id}?session={session.id}"


def _tool_brief(tool_input):
    """What a tool asks to do, in one line: its command or file, else its input."""
    if isinstance(tool_input, dict):
        for key in ("command", "file_path", "notebook_path", "path", "url", "pattern"):
            if isinstance(tool_input.get(key), str):
                return tool_input[key]
    return json.dumps(tool_input, ensure_ascii=False)[:300]


def push_permission(session, request_id):
    """Push a pending permission request to each recipient who wants those."""
    request = db.session.get(PermissionRequest, request_id)
    if request is None or request.decision is not None:
        return  # answered before we got to it: nobody needs telling
    if db.session.get(Command, request.command_id).state not in ACTIVE_STATES:
        return
    project = session.project
    data = push.payload(
        f"Approval needed: {request.tool_name}",
        f"{project.name} · {session.title}\n{_tool_brief(request.input)}",
        session_url(session),
        session.id,
    )
    for user_id in recipients(project):
        if push.settings_of(user_id).permission:
            push.push_to_user(
                user_id,
                f"permission:{request.id}",
                data,
                urgency="high",
                ttl=PERMISSION_TTL,
                topic=session.id,
            )


def long_enough(command):
    """True if a command ran long enough that its user may have looked away."""
    ran = (command.finished_at - command.created_at).total_seconds()
    return ran >= current_app.config["PUSH_LONG_RUN_SECONDS"]


def _duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def push_ended(session, command_id):
    """Push a command's end (once per command) to each recipient who wants those."""
    command = db.session.get(Command, command_id)
    if command is None or command.state not in FINAL_STATES or command.finished_at is None:
        return  # reopened meanwhile: its next end is pushed instead
    if not long_enough(command):
        return
    project = session.project
    ran = _duration((command.finished_at - command.created_at).total_seconds())
    body = f"{project.name} · {session.title} · {ran}"
    if command.state == "failed" and command.error_message:
        body += f"\n{command.error_message}"
    data = push.payload(ENDED_TITLES[command.state], body, session_url(session), session.id)
    for user_id in recipients(project):
        if push.settings_of(user_id).finished:
            push.push_to_user(user_id, f"ended:{command.id}", data, ttl=ENDED_TTL, topic=session.id)


# -- the background task ------------------------------------------------------------------------------


def handle(event):
    """One event: tell the dashboards where the session stands, and push what needs pushing."""
    session = db.session.get(ChatSession, event["sessionId"])
    if session is None:
        return
    message = activity(session)
    for user_id in recipients(session.project):
        outbound.to_user(user_id, message)
    if event["type"] == "permission":
        push_permission(session, event["requestId"])
    elif event["type"] == "command" and event["state"] in FINAL_STATES:
        push_ended(session, event["commandId"])


class Notifier(QueueTasks):
    """One background task per process that takes the hooks' events in order."""

    def _run(self):
        while True:
            event = self.queue.get()
            if event is None:
                return
            with self.app.app_context():
                try:
                    handle(event)
                except Exception:  # the notifier must outlive any one event
                    log.exception("could not handle %s", event)
                finally:
                    end_session()
