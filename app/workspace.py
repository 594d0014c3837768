"""A project's files and changes for browsers: list_files, read_file and git_changes, answered by its agent.

The browser's event is checked here against the sender's access as it is now:
only the project's owner and operators may look (a viewer "sees the project's
sessions live and nothing more", a read-only link nothing but its session), so a
viewer is `forbidden` and a user without a role `not_found`. Then the project's
agent is asked with a `workspace_request`, and its acknowledgement, checked
against the answer's schema, is the browser's acknowledgement.

The handler waits for the agent without holding anything up: python-socketio runs
each event in a task of its own, the wait is on an event of the server's own async
mode (a thread, greenlet or eventlet event alike), and no database connection is
held meanwhile. It waits WORKSPACE_TIMEOUT seconds at most (`internal`), and
every WORKSPACE_POLL seconds looks whether the agent is still on the socket it was
asked on, in the database that every server process shares: an agent that went
away, here or on another process, is `agent_offline` within that time.
"""

import contextlib
import threading
import time
import uuid

from flask import current_app

from app import access, db, outbound, socketio
from app.models import Agent
from protocol import ProtocolError, messages
from protocol.schemas import load_answer
from protocol.workspace import PathRefused, path_parts

# Requests one browser socket may have waiting on agents at once (more: rate_limited).
MAX_IN_FLIGHT = 8
_in_flight = {}  # browser sid -> requests waiting
_in_flight_lock = threading.Lock()


def ask(user_id, message, sid, op):
    """The agent's answer to `op` (list_files, read_file, git_changes) for the browser's message."""
    # Operators and the owner: reading files is not "following the sessions" (viewers, links).
    project = access.project_for(user_id, message["projectId"], "operate")
    try:
        path = "/".join(path_parts(message.get("path", "")))
    except PathRefused as error:
        raise ProtocolError("forbidden", str(error)) from None
    agent = project.agent
    if not agent.online or not agent.usable():
        raise ProtocolError("agent_offline", f"agent {agent.name} is offline")
    request = messages.workspace_request(uuid.uuid4().hex, project.path, op, path)
    agent_id, agent_sid = agent.id, agent.sid
    db.session.close()  # hold no pooled connection while the agent works
    with _slot(sid):
        answer = _agent_answer(agent_id, agent_sid, request)
    return load_answer(op, answer)


@contextlib.contextmanager
def _slot(sid):
    with _in_flight_lock:
        if _in_flight.get(sid, 0) >= MAX_IN_FLIGHT:
            raise ProtocolError("rate_limited", f"at most {MAX_IN_FLIGHT} file requests at once")
        _in_flight[sid] = _in_flight.get(sid, 0) + 1
    try:
        yield
    finally:
        with _in_flight_lock:
            _in_flight[sid] -= 1
            if not _in_flight[sid]:
                del _in_flight[sid]


def _agent_answer(agent_id, agent_sid, request):
    """Send `request` to the agent's socket and wait for its acknowledgement."""
    config = current_app.config
    timeout, poll = config["WORKSPACE_TIMEOUT"], config["WORKSPACE_POLL"]
    answered = socketio.server.eio.create_event()
    answers = []

    def acknowledged(answer=None, *_):
        answers.append(answer)
        answered.set()

    outbound.to_agent(agent_sid, request, callback=acknowledged)
    deadline = time.monotonic() + timeout
    while not answered.wait(max(0.0, min(poll, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            raise ProtocolError("internal", f"the agent did not answer within {timeout:g} s")
        if _gone(agent_id, agent_sid):
            raise ProtocolError("agent_offline", "the agent went offline before it answered")
    return answers[0]


def _gone(agent_id, agent_sid):
    """Whether the agent is no longer on the socket it was asked on (offline, or reconnected)."""
    try:
        return db.session.scalar(db.select(Agent.sid).filter_by(id=agent_id)) != agent_sid
    finally:
        db.session.close()
