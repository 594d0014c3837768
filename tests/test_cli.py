"""Admin commands: `flask --app wsgi users|agents|projects ...`, in process and as real subprocesses."""

import pytest
import socketio
from flask_socketio import ConnectionRefusedError

from app import db
from app.models import Agent, Project, User, hash_token
from app.sockets.agent import _authenticate
from protocol import PROTOCOL_VERSION
from tests.conftest import PASSWORD
from tests.harness import run_flask, wait_until


def invoke(runner, *args, input=None):
    return runner.invoke(args=list(args), input=input)


def make_user(runner, username="alice", password=PASSWORD):
    result = invoke(runner, "users", "create", username, "--password", password)
    assert result.exit_code == 0, result.output
    return username


def make_agent(runner, username="alice", agent_name="laptop"):
    """Create an agent through the command; returns its token (the last line)."""
    result = invoke(runner, "agents", "create", username, agent_name)
    assert result.exit_code == 0, result.output
    return last_line(result.stdout)


def last_line(text):
    return text.strip().splitlines()[-1]


def agent_for_token(app, token):
    """The agent this token logs in as on /agent, or None if the server refuses it."""
    with app.app_context():
        try:
            agent = _authenticate({"token": token, "protocolVersion": PROTOCOL_VERSION})
        except ConnectionRefusedError:
            return None
        return {"id": agent.id, "name": agent.name, "user": agent.user.username}


def counts(app):
    with app.app_context():
        return tuple(
            db.session.scalar(db.select(db.func.count()).select_from(model))
            for model in (User, Agent, Project)
        )


def assert_one_line_failure(result, message):
    """Non-zero exit, one line on stderr that carries `message`, nothing on stdout."""
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines() == [f"Error: {message}"]
    assert result.stdout == ""


# -- users -----------------------------------------------------------------------


def test_users_create_makes_a_user_that_can_log_in(app, runner, client):
    result = invoke(runner, "users", "create", "alice", "--password", PASSWORD)
    assert result.exit_code == 0
    assert last_line(result.stdout) == "created user alice"
    reply = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert reply.status_code == 302


def test_users_create_asks_for_the_password_twice_when_not_given(app, runner):
    result = invoke(runner, "users", "create", "bob", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input
    with app.app_context():
        assert db.session.scalar(db.select(User).filter_by(username="bob")).check_password(PASSWORD)


def test_users_set_password_changes_it(app, runner, client):
    make_user(runner)
    result = invoke(runner, "users", "set-password", "alice", "--password", "a brand new password")
    assert result.exit_code == 0
    assert last_line(result.stdout) == "password changed for alice"
    assert client.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 200
    reply = client.post("/login", data={"username": "alice", "password": "a brand new password"})
    assert reply.status_code == 302


def test_users_create_refuses_a_duplicate_name(app, runner):
    make_user(runner)
    result = invoke(runner, "users", "create", "alice", "--password", "another password")
    assert_one_line_failure(result, "user 'alice' already exists")
    assert counts(app) == (1, 0, 0)
    with app.app_context():
        assert db.session.scalar(db.select(User)).check_password(PASSWORD)


@pytest.mark.parametrize("password", ["short", "1234567"])
def test_users_create_refuses_a_short_password(app, runner, password):
    result = invoke(runner, "users", "create", "alice", "--password", password)
    assert_one_line_failure(result, "password must be at least 8 characters")
    assert counts(app) == (0, 0, 0)


def test_users_create_refuses_an_empty_or_over_long_name(app, runner):
    for name in ("   ", "x" * 65):
        result = invoke(runner, "users", "create", name, "--password", PASSWORD)
        assert_one_line_failure(result, "user name must be 1 to 64 characters")
    assert counts(app) == (0, 0, 0)


def test_users_set_password_refuses_an_unknown_user_and_a_short_password(app, runner):
    assert_one_line_failure(
        invoke(runner, "users", "set-password", "nobody", "--password", PASSWORD), "no user named 'nobody'"
    )
    make_user(runner)
    assert_one_line_failure(
        invoke(runner, "users", "set-password", "alice", "--password", "short"),
        "password must be at least 8 characters",
    )
    with app.app_context():
        assert db.session.scalar(db.select(User)).check_password(PASSWORD)


# -- agents ----------------------------------------------------------------------


def test_agents_create_prints_the_token_once_as_the_last_line(app, runner):
    make_user(runner)
    result = invoke(runner, "agents", "create", "alice", "laptop")
    assert result.exit_code == 0
    token = last_line(result.stdout)
    assert len(token) >= 40
    assert result.stdout.count(token) == 1
    with app.app_context():
        agent = db.session.scalar(db.select(Agent).filter_by(name="laptop"))
        assert agent.token_hash == hash_token(token)
        assert agent.token_hash != token
    assert agent_for_token(app, token) == {"id": agent.id, "name": "laptop", "user": "alice"}


def test_agents_create_gives_every_agent_its_own_token(app, runner):
    make_user(runner)
    tokens = [make_agent(runner, agent_name=name) for name in ("laptop", "desktop", "server")]
    assert len(set(tokens)) == 3
    assert [agent_for_token(app, token)["name"] for token in tokens] == ["laptop", "desktop", "server"]


def test_agents_create_with_expiry_sets_it(app, runner):
    make_user(runner)
    result = invoke(runner, "agents", "create", "alice", "laptop", "--expires-days", "7")
    assert result.exit_code == 0
    with app.app_context():
        agent = db.session.scalar(db.select(Agent))
        assert agent.expires_at is not None and agent.usable()


def test_agents_create_refuses_an_unknown_user(app, runner):
    assert_one_line_failure(invoke(runner, "agents", "create", "nobody", "laptop"), "no user named 'nobody'")
    assert counts(app) == (0, 0, 0)


def test_agents_create_refuses_a_duplicate_name(app, runner):
    make_user(runner)
    token = make_agent(runner)
    result = invoke(runner, "agents", "create", "alice", "laptop")
    assert_one_line_failure(result, "user 'alice' already has an agent named 'laptop'")
    assert counts(app) == (1, 1, 0)
    assert agent_for_token(app, token) is not None


def test_two_users_may_each_have_an_agent_of_the_same_name(app, runner):
    make_user(runner, "alice")
    make_user(runner, "bob")
    tokens = [make_agent(runner, username) for username in ("alice", "bob")]
    assert [agent_for_token(app, token)["user"] for token in tokens] == ["alice", "bob"]


def test_agents_list_shows_each_agent_and_never_a_token(app, runner):
    make_user(runner)
    tokens = [make_agent(runner, agent_name=name) for name in ("laptop", "desktop")]
    invoke(runner, "agents", "revoke", "alice", "desktop")
    result = invoke(runner, "agents", "list", "alice")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    desktop, laptop = lines  # ordered by name
    assert "desktop" in desktop and "revoked" in desktop
    assert "laptop" in laptop and "offline" in laptop and "never" in laptop
    with app.app_context():
        for agent in db.session.scalars(db.select(Agent)):
            assert agent.id in result.stdout
    assert not any(token in result.output for token in tokens)


def test_agents_list_of_a_user_without_agents_prints_nothing(app, runner):
    make_user(runner)
    result = invoke(runner, "agents", "list", "alice")
    assert (result.exit_code, result.stdout) == (0, "")


def test_agents_list_refuses_an_unknown_user(app, runner):
    assert_one_line_failure(invoke(runner, "agents", "list", "nobody"), "no user named 'nobody'")


def test_agents_revoke_stops_the_token(app, runner):
    make_user(runner)
    token = make_agent(runner)
    result = invoke(runner, "agents", "revoke", "alice", "laptop")
    assert result.exit_code == 0
    assert last_line(result.stdout) == "revoked agent laptop"
    assert agent_for_token(app, token) is None
    with app.app_context():
        assert db.session.scalar(db.select(Agent)).revoked_at is not None


def test_agents_rotate_prints_a_new_token_and_the_old_one_stops(app, runner):
    make_user(runner)
    old = make_agent(runner)
    agent_id = agent_for_token(app, old)["id"]
    result = invoke(runner, "agents", "rotate", "alice", "laptop")
    assert result.exit_code == 0
    new = last_line(result.stdout)
    assert new != old and result.stdout.count(new) == 1
    assert agent_for_token(app, old) is None
    assert agent_for_token(app, new)["id"] == agent_id


@pytest.mark.parametrize("command", ["revoke", "rotate"])
def test_agents_revoke_and_rotate_refuse_unknown_user_or_agent(app, runner, command):
    assert_one_line_failure(invoke(runner, "agents", command, "nobody", "laptop"), "no user named 'nobody'")
    make_user(runner)
    token = make_agent(runner)
    assert_one_line_failure(
        invoke(runner, "agents", command, "alice", "desktop"), "user 'alice' has no agent named 'desktop'"
    )
    assert agent_for_token(app, token) is not None


def test_agent_of_another_user_cannot_be_revoked_by_naming_the_wrong_owner(app, runner):
    make_user(runner, "alice")
    make_user(runner, "bob")
    token = make_agent(runner, "alice", "laptop")
    result = invoke(runner, "agents", "revoke", "bob", "laptop")
    assert_one_line_failure(result, "user 'bob' has no agent named 'laptop'")
    assert agent_for_token(app, token) is not None


# -- projects ----------------------------------------------------------------------


def test_projects_create_prints_the_project_id_last(app, runner, tmp_path):
    make_user(runner)
    make_agent(runner)
    result = invoke(runner, "projects", "create", "alice", "laptop", "webapp", str(tmp_path))
    assert result.exit_code == 0
    project_id = last_line(result.stdout)
    with app.app_context():
        project = db.session.get(Project, project_id)
        assert (project.name, project.path, project.agent.name, project.permission_mode) == (
            "webapp",
            str(tmp_path),
            "laptop",
            "default",
        )


def test_projects_create_takes_a_permission_mode(app, runner):
    make_user(runner)
    make_agent(runner)
    args = ("projects", "create", "alice", "laptop", "webapp", "/srv/app", "--permission-mode", "plan")
    result = invoke(runner, *args)
    assert result.exit_code == 0
    with app.app_context():
        assert db.session.get(Project, last_line(result.stdout)).permission_mode == "plan"
    bad = invoke(
        runner, "projects", "create", "alice", "laptop", "other", "/srv/app", "--permission-mode", "yolo"
    )
    assert_one_line_failure(bad, "permission mode must be one of default, acceptEdits, plan")
    assert counts(app) == (1, 1, 1)


@pytest.mark.parametrize("path", ["code/webapp", "./webapp", "webapp", ""])
def test_projects_create_refuses_a_relative_path(app, runner, path):
    make_user(runner)
    make_agent(runner)
    result = invoke(runner, "projects", "create", "alice", "laptop", "webapp", path)
    assert_one_line_failure(result, f"project path must be absolute, got {path!r}")
    assert counts(app) == (1, 1, 0)


def test_projects_create_refuses_a_duplicate_name(app, runner):
    make_user(runner)
    make_agent(runner)
    assert invoke(runner, "projects", "create", "alice", "laptop", "webapp", "/srv/a").exit_code == 0
    result = invoke(runner, "projects", "create", "alice", "laptop", "webapp", "/srv/b")
    assert_one_line_failure(result, "user 'alice' already has a project named 'webapp'")
    assert counts(app) == (1, 1, 1)


def test_projects_create_refuses_unknown_user_or_agent(app, runner):
    result = invoke(runner, "projects", "create", "nobody", "laptop", "webapp", "/srv/a")
    assert_one_line_failure(result, "no user named 'nobody'")
    make_user(runner)
    result = invoke(runner, "projects", "create", "alice", "laptop", "webapp", "/srv/a")
    assert_one_line_failure(result, "user 'alice' has no agent named 'laptop'")
    assert counts(app) == (1, 0, 0)


def test_projects_create_refuses_another_users_agent(app, runner):
    make_user(runner, "alice")
    make_user(runner, "bob")
    make_agent(runner, "bob", "bobs-laptop")
    result = invoke(runner, "projects", "create", "alice", "bobs-laptop", "webapp", "/srv/a")
    assert_one_line_failure(result, "user 'alice' has no agent named 'bobs-laptop'")
    assert counts(app) == (2, 1, 0)


# -- real subprocesses -------------------------------------------------------------


@pytest.mark.integration
def test_admin_commands_work_as_real_processes(app, database_url, tmp_path, client):
    instance = tmp_path / "instance"

    done = run_flask(database_url, instance, "users", "create", "carol", "--password", PASSWORD)
    assert done.returncode == 0, done.stderr
    done = run_flask(database_url, instance, "agents", "create", "carol", "workstation")
    assert done.returncode == 0, done.stderr
    token = last_line(done.stdout)
    done = run_flask(database_url, instance, "projects", "create", "carol", "workstation", "api", "/srv/api")
    assert done.returncode == 0, done.stderr
    project_id = last_line(done.stdout)
    done = run_flask(database_url, instance, "agents", "rotate", "carol", "workstation")
    assert done.returncode == 0, done.stderr
    new_token = last_line(done.stdout)

    assert agent_for_token(app, token) is None
    assert agent_for_token(app, new_token)["name"] == "workstation"
    client.post("/login", data={"username": "carol", "password": PASSWORD})
    assert client.get(f"/projects/{project_id}").status_code == 200


@pytest.mark.integration
def test_admin_command_failure_as_a_real_process_is_one_line_on_stderr(app, database_url, tmp_path):
    instance = tmp_path / "instance"
    done = run_flask(database_url, instance, "users", "create", "carol", "--password", "short")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["Error: password must be at least 8 characters"]
    assert done.stdout == ""
    done = run_flask(database_url, instance, "projects", "create", "nobody", "a", "b", "relative/path")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["Error: no user named 'nobody'"]
    assert counts(app) == (0, 0, 0)


# -- a connected agent and the commands ------------------------------------------------


def make_agent_connection(url, token):
    """A bare Socket.IO client logged in on /agent with `token`, not reconnecting."""
    client = socketio.Client(reconnection=False)
    auth = {"token": token, "protocolVersion": PROTOCOL_VERSION, "name": "probe"}
    client.connect(url, namespaces=["/agent"], auth=auth, transports=["websocket"], wait_timeout=10)
    return client


@pytest.mark.parametrize("command", ["revoke", "rotate"])
def test_revoking_or_rotating_from_the_command_line_cuts_a_connected_agent_off(
    server, seed, database_url, tmp_path, command
):
    connection = make_agent_connection(server.url, seed.token)
    try:
        assert connection.connected
        done = run_flask(
            database_url, tmp_path / "instance", "agents", command, seed.username, seed.agent_name
        )
        assert done.returncode == 0, done.stderr
        try:
            wait_until(
                lambda: not connection.connected, timeout=10, message="the old token's connection to end"
            )
        except AssertionError:
            pytest.fail(
                f"BUG: after `flask agents {command}` in another process the agent stays connected "
                "with its old token; only revoked or expired agents are cut off by the presence sweep"
            )
    finally:
        connection.disconnect()
