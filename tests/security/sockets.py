"""In-process Socket.IO clients for the security tests: a logged-in browser and an agent.

They are Flask-SocketIO's test clients: every event goes through the real
namespaces, the `inbound` wrapper, the relay and the database, only without a
network in between.
"""

import queue
import time
from contextlib import contextmanager

from app import create_app, db, socketio
from app.sockets import stop_background_work
from config import TestingConfig, sqlalchemy_url
from protocol import ERROR_CODES as ALL_ERROR_CODES
from protocol import PROTOCOL_VERSION

# The codes an acknowledgement may carry (the others only end a command).
ERROR_CODES = set(ALL_ERROR_CODES) - {"interrupted", "agent_lost", "claude_error"}


@contextmanager
def app_with(database_url, **settings):
    """The app on `database_url` with TestingConfig plus `settings`."""
    config = type("Config", (TestingConfig,), {"SQLALCHEMY_DATABASE_URI": sqlalchemy_url(database_url)})
    for key, value in settings.items():
        setattr(config, key, value)
    app = create_app(config)
    yield app
    stop_background_work(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


class ReadsEverything:
    """The Engine.IO side of a test client: a browser that reads all it is sent at once.

    The test client has no Engine.IO socket, and delivery (app/delivery.py) asks
    a socket's transport how much waits for it before sending; this one never
    has a backlog. Stuck browsers are tested with real sockets (test_limits.py).
    """

    def __init__(self):
        self.queue = queue.Queue()


class Socket:
    """One Socket.IO test client on one namespace, with `call` answering the ack."""

    def __init__(self, app, namespace, **kwargs):
        self.namespace = namespace
        self.client = socketio.test_client(app, namespace=namespace, **kwargs)
        socketio.server.eio.sockets[self.client.eio_sid] = ReadsEverything()
        self.start = 0

    @property
    def connected(self):
        return self.client.is_connected(self.namespace)

    def call(self, event, payload=None, **fields):
        """Emit `event` with `{type: event, **fields}` (or the raw `payload`) and return the ack."""
        if payload is None:
            payload = {"type": event, **fields}
        return self.client.emit(event, payload, namespace=self.namespace, callback=True)

    def emit_raw(self, event, *args):
        return self.client.emit(event, *args, namespace=self.namespace, callback=True)

    def received(self, name=None):
        """The payloads received since the last `forget`, optionally only events named `name`."""
        # Read without taking: the chunk writer's thread appends to this list meanwhile.
        events = [e for e in self.client.queue[self.start :] if e["namespace"] == self.namespace]
        return [e["args"][0] if e["args"] else None for e in events if name is None or e["name"] == name]

    def forget(self):
        self.start = len(self.client.queue)

    def wait_for(self, name, predicate=lambda payload: True, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [p for p in self.received(name) if predicate(p)]
            if found:
                return found
            time.sleep(0.01)
        raise AssertionError(f"no {name} event arrived within {timeout} s")

    def close(self):
        if self.connected:
            self.client.disconnect(namespace=self.namespace)
        socketio.server.eio.sockets.pop(self.client.eio_sid, None)


class Sockets:
    """Opens browser and agent sockets for a test and closes them all afterwards."""

    def __init__(self, app):
        self.app = app
        self.opened = []

    def browser(self, seed, headers=None):
        http = self.app.test_client()
        reply = http.post("/login", data={"username": seed.username, "password": seed.password})
        assert reply.status_code == 302, reply.status_code
        socket = Socket(self.app, "/web", flask_test_client=http, headers=headers)
        self.opened.append(socket)
        return socket

    def agent(self, token, **auth):
        auth = {"token": token, "protocolVersion": PROTOCOL_VERSION, "name": "probe", **auth}
        socket = Socket(self.app, "/agent", auth=auth)
        self.opened.append(socket)
        return socket

    def close(self):
        for socket in self.opened:
            socket.close()


def assert_refused(reply, *codes):
    """An error answer in the contract's shape, with one of `codes` (any known code if none given)."""
    assert isinstance(reply, dict) and reply.get("ok") is False, reply
    error = reply["error"]
    assert isinstance(error.get("message"), str) and error["message"], reply
    assert error["code"] in (codes or ERROR_CODES), reply
    return error["code"]


def chunk(command, seq, data="", complete=False, **extra):
    """A command_response payload for `command` (a dict with sessionId and commandId)."""
    return {
        "type": "command_response",
        "sessionId": command["sessionId"],
        "commandId": command["commandId"],
        "seq": seq,
        "data": data,
        "isComplete": complete,
        **extra,
    }
