"""Fixtures: the app on a fresh database (SQLite, or PostgreSQL with TETHER_TEST_DB=postgresql),
and a live system of real processes for integration tests."""

import contextlib
import os
import uuid
from dataclasses import dataclass

import psycopg
import pytest

from app import create_app, db
from app.accounts import create_agent, create_project, create_user
from app.sockets import stop_background_work
from config import TestingConfig, sqlalchemy_url
from tests.harness import AgentProcess, ServerProcess, WebClient

pytest_plugins = ["tests.claude_fixtures"]

PG_ADMIN_URL = os.environ.get("TETHER_TEST_PG_ADMIN", "postgresql://127.0.0.1:5432/test")
PASSWORD = "correct horse battery"


@contextlib.contextmanager
def fresh_postgresql_database():
    """A new PostgreSQL database on the local server, dropped afterwards."""
    name = f"tether_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(tmp_path):
    """A fresh, empty database for one test."""
    if os.environ.get("TETHER_TEST_DB") != "postgresql":
        yield f"sqlite:///{tmp_path / 'tether.sqlite3'}"
        return
    with fresh_postgresql_database() as url:
        yield url


@pytest.fixture
def postgresql_url():
    """Always PostgreSQL: for tests of several server processes sharing one database."""
    with fresh_postgresql_database() as url:
        yield url


@contextlib.contextmanager
def app_on(database_url):
    """The app (TestingConfig) on a given database; tables created on start."""

    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = sqlalchemy_url(database_url)

    app = create_app(Config)
    yield app
    stop_background_work(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app(database_url):
    with app_on(database_url) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@dataclass
class Seed:
    username: str
    password: str
    user_id: int
    agent_id: str
    agent_name: str
    token: str
    project_id: str
    project_path: str


def make_seed(app, workdir, username="alice", agent_name="laptop"):
    """A user with one agent and one project in `workdir`."""
    with app.app_context():
        user = create_user(username, PASSWORD)
        agent, token = create_agent(user, agent_name)
        project = create_project(user, agent, f"{username}-project", workdir)
        return Seed(username, PASSWORD, user.id, agent.id, agent_name, token, project.id, workdir)


@pytest.fixture
def seed(app, tmp_path):
    return make_seed(app, str(tmp_path))


class LiveSystem:
    """The real server process, plus agents and web clients started on demand."""

    def __init__(self, app, database_url, workdir, claude_env, server_env=None):
        self.app = app
        self.database_url = database_url
        self.workdir = workdir
        self.claude_env = claude_env
        self.server_env = server_env or {}
        self.server = self.new_server()
        self.processes = [self.server]
        self.clients = []

    def new_server(self, port=None):
        return ServerProcess(self.database_url, self.workdir, port=port, extra_env=self.server_env)

    @property
    def url(self):
        return self.server.url

    def start(self):
        self.server.start()
        return self

    def seed(self, username="alice", agent_name="laptop"):
        path = os.path.join(self.workdir, f"{username}-{agent_name}")
        os.makedirs(path, exist_ok=True)
        return make_seed(self.app, path, username, agent_name)

    def agent(self, seed, name=None, server=None, **kwargs):
        url = (server or self.server).url
        process = AgentProcess(
            url, seed.token, self.workdir, self.claude_env, name=name or seed.agent_name, **kwargs
        )
        self.processes.append(process)
        self.latest_agent = process
        return process.start()

    def ready(self, browsers=1, **agent_kwargs):
        """A seeded user, `browsers` connected web clients and a running agent seen online."""
        seed = self.seed()
        clients = [self.browser(seed) for _ in range(browsers)]
        self.agent(seed, **agent_kwargs)
        clients[0].agent_online(seed.agent_id)
        return seed, clients

    def browser(self, seed, server=None):
        client = WebClient((server or self.server).url, seed.username, seed.password).connect()
        self.clients.append(client)
        return client

    def restart_server(self, kill=True):
        port = self.server.port
        self.server.kill() if kill else self.server.stop()
        self.server = self.new_server(port)
        self.processes.append(self.server)
        self.server.start()

    def close(self):
        for client in self.clients:
            client.close()
        # Signal every process first, then wait: agents take a few seconds to close Claude Code.
        for process in self.processes:
            process.send()
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture
def live(app, database_url, tmp_path, claude_env):
    system = LiveSystem(app, database_url, str(tmp_path), claude_env).start()
    yield system
    system.close()


def pytest_collection_modifyitems(items):
    """Mark tests by folder: tests/integration -> integration, tests/browser -> browser."""
    for item in items:
        parts = item.path.parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "browser" in parts:
            item.add_marker(pytest.mark.browser)
