"""Fixtures: the app on a fresh database (SQLite, or PostgreSQL with TETHER_TEST_DB=postgresql),
and a live system of real processes for integration tests.

A fixture that starts processes is declared with `@starts(...)` (tests/lanes.py): every test
that uses it is marked integration or browser, and so kept out of `make test-fast`.
"""

import functools
import glob
import os
from dataclasses import dataclass

import pytest
from werkzeug.security import generate_password_hash

from app import current_services, db
from app.accounts import create_agent, create_project
from app.models import ChatSession, Chunk, Command, User
from config import TestingConfig
from tests.databases import Databases, on_postgresql
from tests.harness import ASYNC_MODE, AgentProcess, ServerProcess, WebClient
from tests.lanes import lane_of, starts
from tests.sockets import ReusableApp, Sockets, app_with

pytest_plugins = ["tests.lanes", "tests.claude_fixtures", "tests.push_service", "pytester"]

PASSWORD = "correct horse battery"


LOG_TAIL_LINES = 60


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that started the server or agents shows the end of their logs: on CI
    that is all there is to tell a lost message from a stuck process."""
    report = yield
    tmp_path = item.funcargs.get("tmp_path") if hasattr(item, "funcargs") else None
    if report.failed and tmp_path is not None:
        for path in sorted(glob.glob(os.path.join(tmp_path, "*.log"))):
            with open(path, encoding="utf-8", errors="replace") as file:
                tail = file.readlines()[-LOG_TAIL_LINES:]
            report.sections.append((f"Captured end of {os.path.basename(path)}", "".join(tail)))
    return report


@pytest.fixture(scope="session")
def databases(tmp_path_factory):
    """Fresh databases, copied from a schema migrated once per session (tests/databases.py)."""
    made = Databases(str(tmp_path_factory.mktemp("databases")))
    yield made
    made.close()


@pytest.fixture(scope="session")
def reusable(databases, tmp_path_factory):
    """The app the unit tests share on SQLite (tests/sockets.py: ReusableApp)."""
    return ReusableApp(databases.sqlite_template_path(), str(tmp_path_factory.mktemp("reused")))


def shares_the_app(request):
    """Unit tests on SQLite share one app; a test that starts processes, or runs on
    PostgreSQL, gets a database and an app of its own."""
    return not on_postgresql() and lane_of(request.node) is None


@pytest.fixture
def database_url(request, databases, tmp_path):
    """A fresh database for one test, with the current schema in it."""
    if shares_the_app(request):
        yield request.getfixturevalue("reusable").reset_database()
        return
    with databases.fresh(str(tmp_path)) as url:
        yield url


@pytest.fixture
def empty_database_url(databases, tmp_path):
    """A fresh database without a single table: for tests of creating the schema."""
    with databases.fresh(str(tmp_path), schema=False) as url:
        yield url


@pytest.fixture
def postgresql_url(databases, tmp_path):
    """Always PostgreSQL, empty: for tests of several server processes sharing one database."""
    with databases.fresh(str(tmp_path), schema=False, postgresql=True) as url:
        yield url


@pytest.fixture
def app(database_url):
    with app_with(database_url, AUTO_MIGRATE=False) as app:  # the schema is in place already
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def other(app, tmp_path):
    """A second user, bob, with an agent and a project of his own."""
    path = tmp_path / "bob"
    path.mkdir()
    return make_seed(app, str(path), username="bob", agent_name="bobs-laptop")


@pytest.fixture
def sockets(app):
    """In-process browser and agent sockets (tests/sockets.py), closed afterwards."""
    opened = Sockets(app)
    yield opened
    opened.close()


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


@functools.cache
def password_hash():
    # Hashed once, with the testing configuration's cheaper scrypt (config.py): signing in costs
    # ~0.3 ms instead of ~100 ms of CPU, and nearly every test seeds a user and logs in.
    return generate_password_hash(PASSWORD, method=TestingConfig.PASSWORD_HASH_METHOD)


def make_user(username):
    """A user signing in with PASSWORD, hashed as the seeded ones are (TestingConfig's method: a
    full-strength hash costs ~0.1 s to make and again at each login); inside an app context."""
    user = User(username=username, password_hash=password_hash())
    db.session.add(user)
    db.session.commit()
    return user


def make_seed(app, workdir, username="alice", agent_name="laptop"):
    """A user with one agent and one project in `workdir` (the user's hash: password_hash())."""
    with app.app_context():
        user = make_user(username)
        agent, token = create_agent(user, agent_name)
        project = create_project(user, agent, f"{username}-project", workdir)
        return Seed(username, PASSWORD, user.id, agent.id, agent_name, token, project.id, workdir)


def make_command(app, seed, state="running", chunks=0):
    """A command in a new session of `seed`'s project, with `chunks` results: (session id, command id)."""
    with app.app_context():
        session = ChatSession(project_id=seed.project_id, title="t", last_seq=chunks)
        db.session.add(session)
        db.session.flush()
        command = Command(
            session_id=session.id,
            user_id=seed.user_id,
            agent_id=seed.agent_id,
            text="x",
            working_directory=seed.project_path,
            state=state,
            last_agent_seq=chunks,
        )
        db.session.add(command)
        db.session.flush()
        for seq in range(1, chunks + 1):
            status = "complete" if seq == chunks and state == "done" else "streaming"
            chunk = Chunk(session_id=session.id, seq=seq, command_id=command.id, status=status)
            chunk.response = f"<{seq}>"
            db.session.add(chunk)
        db.session.commit()
        return session.id, command.id


@pytest.fixture
def seed(app, tmp_path):
    return make_seed(app, str(tmp_path))


class LiveSystem:
    """The real server process, plus agents and web clients started on demand."""

    def __init__(self, app, database_url, workdir, claude_env, server_env=None):
        stop_in_process_jobs(app)
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


def stop_in_process_jobs(app):
    """A test that starts a real server keeps its in-process app only to seed and read the
    database they share: the app's own periodic jobs must not act on it. Its presence sweep
    marked the server's agents offline (telling nobody: it has no sockets) whenever the
    server's own sweep ran late on a loaded machine."""
    current_services(app).scheduler.stop()


@pytest.fixture
@starts("integration")
def server_with(request, database_url, tmp_path):
    """`server_with(**env)`: start the real server (`python wsgi.py`) with extra TETHER_* settings.

    Keywords: `async_mode` (default TETHER_ASYNC_MODE), `database_url` (default the test's).
    Each server is stopped after the test.
    """
    started = []

    def start(async_mode=ASYNC_MODE, database_url=database_url, **env):
        if "app" in request.fixturenames:
            stop_in_process_jobs(request.getfixturevalue("app"))
        server = ServerProcess(database_url, str(tmp_path), async_mode=async_mode, extra_env=env)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def server(app, server_with):
    """The real server on the test's database (after `app`, which seeds through it)."""
    return server_with()


@pytest.fixture
@starts("integration")
def live_with(app, database_url, tmp_path, claude_env):
    """`live_with(**server_env)`: the live system with extra TETHER_* settings for its server."""
    systems = []

    def start(**server_env):
        systems.append(LiveSystem(app, database_url, str(tmp_path), claude_env, server_env).start())
        return systems[-1]

    yield start
    for system in systems:
        system.close()


@pytest.fixture
def live(live_with):
    return live_with()
