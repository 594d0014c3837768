"""In-process Socket.IO clients for the security tests: a logged-in browser and an agent.

They are Flask-SocketIO's test clients: every event goes through the real
namespaces, the `inbound` wrapper, the relay and the database, only without a
network in between.
"""

import contextlib
import os
import sqlite3
from contextlib import contextmanager

from app import attach_realtime, create_app, current_services, db, socketio
from config import TestingConfig, sqlalchemy_url
from protocol import ERROR_CODES as ALL_ERROR_CODES
from protocol import PROTOCOL_VERSION
from tests.harness import wait_until

# The codes an acknowledgement may carry (the others only end a command).
ERROR_CODES = set(ALL_ERROR_CODES) - {"interrupted", "agent_lost", "claude_error"}


@contextmanager
def app_with(database_url, **settings):
    """The app on `database_url` with TestingConfig plus `settings`: the process's reusable app
    when `database_url` is its database (a unit test on SQLite), otherwise a new one."""
    reusable = REUSABLE.get(database_url)
    if reusable is not None and not reusable.in_use and reusable.can_take(settings):
        with reusable.use(**settings) as app:
            yield app
        return
    app = _testing_app(database_url, **settings)
    current_services(app).start()
    yield app
    current_services(app).stop()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


REUSABLE = {}  # database URL -> the ReusableApp on it


class ReusableApp:
    """One testing app per pytest process on one SQLite file, for the unit tests.

    Building an app costs ~25 ms, most of it Werkzeug compiling the routes and SQLAlchemy
    compiling statements again for a new engine: more than most unit tests take. Each test
    that can share gets the file reset to the migrated template, the configuration as it
    was made, none of the extensions made since (throttles), and a new Socket.IO server with
    new services (`attach_realtime`), so nothing in memory passes from one test to the next.
    """

    def __init__(self, template, folder):
        self.template = template
        self.path = os.path.join(folder, "reused.sqlite3")
        self.url = f"sqlite:///{self.path}"
        self.app = None
        self.in_use = False
        REUSABLE[self.url] = self

    def reset_database(self):
        """The file as the template holds it, through SQLite's backup: a connection still open
        (a thread of the last test's, or the app's pool) sees the new content, nothing breaks."""
        source, target = sqlite3.connect(self.template), sqlite3.connect(self.path)
        with contextlib.closing(source), contextlib.closing(target):
            source.backup(target)
        return self.url

    @staticmethod
    def can_take(settings):
        """Settings read when a request or a socket comes, or by `attach_realtime`, can change on
        a reused app; the database engine's cannot."""
        return not any(name.startswith("SQLALCHEMY_") for name in settings)

    @contextmanager
    def use(self, **settings):
        if self.app is None:
            self.app = _testing_app(self.url, AUTO_MIGRATE=False)
            self.config = dict(self.app.config)
            self.extensions = set(self.app.extensions)
        self._renew(settings)
        current_services(self.app).start()
        self.in_use = True
        try:
            yield self.app
        finally:
            self.in_use = False
            current_services(self.app).stop()
            with self.app.app_context():
                db.session.remove()

    def _renew(self, settings):
        self.app.config.clear()
        self.app.config.update({**self.config, **settings})
        for name in set(self.app.extensions) - self.extensions:
            del self.app.extensions[name]
        attach_realtime(self.app)


def _testing_app(database_url, **settings):
    config = type("Config", (TestingConfig,), {"SQLALCHEMY_DATABASE_URI": sqlalchemy_url(database_url)})
    for key, value in settings.items():
        setattr(config, key, value)
    return create_app(config)


class Socket:
    """One Socket.IO test client on one namespace, with `call` answering the ack."""

    def __init__(self, app, namespace, **kwargs):
        self.namespace = namespace
        self.client = socketio.test_client(app, namespace=namespace, **kwargs)
        self.start = 0

    @property
    def sid(self):
        """The Socket.IO sid the server knows this client by."""
        return socketio.server.manager.sid_from_eio_sid(self.client.eio_sid, self.namespace)

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
        """The `name` events received that fit `predicate`, once there is one."""

        def fitting():
            return [payload for payload in self.received(name) if predicate(payload)]

        return wait_until(fitting, timeout, f"a {name} event")

    def close(self):
        if self.connected:
            self.client.disconnect(namespace=self.namespace)


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
        socket.http = http  # the logged-in HTTP client, for pages and logging out
        self.opened.append(socket)
        return socket

    def link(self, token):
        """A browser that opened a read-only link: no login, the link's token in the connect auth."""
        socket = Socket(self.app, "/web", auth={"link": token})
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
