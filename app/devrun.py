"""`flask --app wsgi dev`: the whole of Tether on one machine, for trying it out.

Creates (once) a user with a generated password, a local agent and a project in
the instance folder, starts the agent as a child process and serves the app.
Without Anthropic credentials the agent answers with the scripted demo model.
"""

import json
import logging
import os
import secrets
import signal
import subprocess
import sys

import click

from app import accounts, db, socketio
from app.models import Agent, Project, User

CREDENTIALS_FILE = "dev-credentials.json"


def has_claude_credentials():
    """An API key, or a Claude Code login on this machine."""
    if os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("CLAUDE_CODE_OAUTH_TOKEN"):
        return True
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude")
    return os.path.exists(os.path.join(config_dir, ".credentials.json"))


def ensure_local_setup(app, username):
    """User, agent and project for the local run; returns (password, token, project)."""
    path = os.path.join(app.instance_path, CREDENTIALS_FILE)
    saved = _read_json(path)
    user = db.session.scalar(db.select(User).filter_by(username=username))
    if user is None or saved.get("username") != username:
        password = secrets.token_urlsafe(9)
        if user is None:
            user = accounts.create_user(username, password)
        else:
            accounts.set_password(username, password)
        saved = {"username": username, "password": password}
    agent = db.session.scalar(db.select(Agent).filter_by(user_id=user.id, name="local"))
    if agent is None or not saved.get("token") or agent.revoked_at:
        if agent is None:
            agent, token = accounts.create_agent(user, "local")
        else:
            agent.revoked_at = None
            token = accounts.rotate_token(agent)
        saved["token"] = token
    workspace = os.path.join(app.instance_path, "workspace")
    if not os.path.isdir(workspace):
        os.makedirs(workspace)
        make_repository(workspace)
    project = db.session.scalar(db.select(Project).filter_by(user_id=user.id, name="workspace"))
    if project is None:
        project = accounts.create_project(user, agent, "workspace", workspace)
    _write_json(path, saved)
    return saved["password"], saved["token"], project


WORKSPACE_README = """# Workspace

A folder for trying Tether: the local agent's project. Claude Code works here, and the chat
page's Files and Changes panels show what it writes (this folder is a git repository, so the
changes are its working tree against the first commit).
"""


def make_repository(workspace):
    """A git repository with one commit, so the Changes panel has something to compare with.

    Best effort: without git the workspace is a plain folder (Changes says so).
    """
    with open(os.path.join(workspace, "README.md"), "w", encoding="utf-8") as file:
        file.write(WORKSPACE_README)
    identity = ["-c", "user.name=Tether", "-c", "user.email=tether@localhost"]
    commit = [*identity, "commit", "-q", "-m", "A workspace to try Tether"]
    steps = (["init", "-q"], ["add", "README.md"], commit)
    try:
        for step in steps:
            subprocess.run(["git", *step], cwd=workspace, check=True, timeout=30, capture_output=True)
    except (OSError, subprocess.SubprocessError) as error:
        logging.getLogger("tether.dev").info("workspace left without git: %s", error)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return {}


def _write_json(path, data):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as file:
        json.dump(data, file)


def start_agent(url, token, workspace, demo, state_dir):
    args = [sys.executable, "-m", "agent_client", "--server", url, "--name", "local"]
    args += ["--root", workspace, "--state-dir", state_dir]
    if demo:
        args.append("--demo")
    # The token goes through the environment: command lines are visible to every local user.
    return subprocess.Popen(args, env={**os.environ, "TETHER_AGENT_TOKEN": token})


def register(app):
    @app.cli.command("dev")
    @click.option("--host", default="127.0.0.1")
    @click.option("--port", default=5000, type=int)
    @click.option("--username", default="admin")
    @click.option("--no-agent", is_flag=True, help="Serve only; start agents yourself.")
    def dev(host, port, username, no_agent):
        """Run the server and a local agent, with a first user (development)."""
        password, token, project = ensure_local_setup(app, username)
        url = f"http://{host}:{port}"
        demo = not has_claude_credentials()
        agent = None
        if not no_agent:
            state_dir = os.path.join(app.instance_path, "agent-state")
            agent = start_agent(url, token, project.path, demo, state_dir)
        click.echo(
            f"\n  Tether is running at {url}\n"
            f"  Sign in as {username} / {password}\n"
            f"  Local agent 'local' on {project.path}"
            + (" (demo model: no Anthropic credentials found)" if demo else "")
            + "\n  Stop with Ctrl+C.\n"
        )
        # Our own banner says where to go; Werkzeug's production warnings are not news here.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # SIGTERM ends the command through `finally`, so the agent stops too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        # Flask ignores app.run() inside a `flask` command unless told it is meant.
        os.environ.pop("FLASK_RUN_FROM_CLI", None)
        try:
            socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True, log_output=False)
        finally:
            # The server has stopped: what its connection threads still log is the agent's
            # last WebSocket frames read as HTTP ("Bad request syntax"), not news either.
            logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
            if agent and agent.poll() is None:
                agent.terminate()
                try:
                    agent.wait(10)
                except subprocess.TimeoutExpired:  # never leave a stuck agent behind
                    agent.kill()
