"""Admin commands: `flask --app wsgi users|agents|projects|sessions ...`.

Each prints its result's identifier as its last line, and fails with a one-line
reason on stderr and a non-zero exit. Commands are deliberately alike (find what is
named inside `_Reported`, call app/accounts.py, echo): the logic is in accounts.
"""

from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from app import accounts, db
from app.models import Agent, utcnow

users = AppGroup("users", help="Manage users.")
agents = AppGroup("agents", help="Manage agents and their tokens.")
projects = AppGroup("projects", help="Manage projects and who they are shared with.")
sessions = AppGroup("sessions", help="Share one session read-only by link.")


def register(app):
    from app import devrun

    for group in (users, agents, projects, sessions):
        app.cli.add_command(group)
    devrun.register(app)


def _fail(error):
    raise click.ClickException(str(error))


class _Reported:
    """Turn AccountError into click's one-line error and exit code 1."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if isinstance(error, accounts.AccountError):
            _fail(error)
        return False


@users.command("create")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def users_create(username, password):
    """Create a user."""
    with _Reported():
        user = accounts.create_user(username, password)
    click.echo(f"created user {user.username}")


@users.command("set-password")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def users_set_password(username, password):
    """Change a user's password."""
    with _Reported():
        accounts.set_password(username, password)
    click.echo(f"password changed for {username}")


@agents.command("create")
@click.argument("username")
@click.argument("agent_name")
@click.option("--expires-days", type=int, help="Token expiry in days (default: never).")
def agents_create(username, agent_name, expires_days):
    """Register an agent and print its token once, as the last line."""
    with _Reported():
        user = accounts.find_user(username)
        expires = utcnow() + timedelta(days=expires_days) if expires_days else None
        agent, token = accounts.create_agent(user, agent_name, expires)
    click.echo(f"created agent {agent.name} ({agent.id}); its token is shown once:")
    click.echo(token)


@agents.command("list")
@click.argument("username")
def agents_list(username):
    """List a user's agents."""
    with _Reported():
        user = accounts.find_user(username)
    rows = db.session.scalars(db.select(Agent).filter_by(user_id=user.id).order_by(Agent.name))
    for agent in rows:
        state = "revoked" if agent.revoked_at else ("online" if agent.online else "offline")
        click.echo(f"{agent.id}  {agent.name}  {state}  last seen {agent.seen_at or 'never'}")


def _named_agent(username, agent_name):
    with _Reported():
        return accounts.find_agent(accounts.find_user(username), agent_name)


@agents.command("revoke")
@click.argument("username")
@click.argument("agent_name")
def agents_revoke(username, agent_name):
    """Revoke an agent's token; a connected agent is disconnected."""
    agent = _named_agent(username, agent_name)
    accounts.revoke_agent(agent)
    click.echo(f"revoked agent {agent.name}")


@agents.command("rotate")
@click.argument("username")
@click.argument("agent_name")
def agents_rotate(username, agent_name):
    """Issue a new token for an agent (the old one stops working); prints it last."""
    agent = _named_agent(username, agent_name)
    token = accounts.rotate_token(agent)
    click.echo(f"new token for agent {agent.name}, shown once:")
    click.echo(token)


@agents.command("pair")
@click.argument("username")
@click.argument("agent_name")
def agents_pair(username, agent_name):
    """Print a pairing code for an agent (created if missing), as the last line: used once, within minutes.

    On the agent's machine: tether-agent --server URL --pair CODE. Trading it gives the
    agent a fresh token; one still running with the old token is cut off.
    """
    from app import pairing

    with _Reported():
        agent, code, created = pairing.pair_by_name(username, agent_name)
    minutes = current_app.config["PAIRING_CODE_MINUTES"]
    if created:
        click.echo(f"created agent {agent.name} ({agent.id})")
    click.echo(f"pairing code for agent {agent.name}, valid {minutes} minutes, once; on its machine run")
    click.echo("  tether-agent --server URL --pair CODE")
    click.echo(code)


@projects.command("create")
@click.argument("username")
@click.argument("agent_name")
@click.argument("project_name")
@click.argument("path")
@click.option("--permission-mode", default="default", help="default, acceptEdits or plan")
def projects_create(username, agent_name, project_name, path, permission_mode):
    """Create a project on an agent's machine; prints its id last."""
    with _Reported():
        user = accounts.find_user(username)
        agent = accounts.find_agent(user, agent_name)
        project = accounts.create_project(user, agent, project_name, path, permission_mode)
    click.echo(f"created project {project.name} at {project.path} on {agent.name}:")
    click.echo(project.id)


@projects.command("share")
@click.argument("project_id")
@click.argument("username")
@click.option("--role", type=click.Choice(["viewer", "operator"]), required=True)
def projects_share(project_id, username, role):
    """Share a project with a user as viewer or operator."""
    with _Reported():
        project = accounts.find_project(project_id)
        accounts.share_project(project, username, role)
    click.echo(f"shared project {project.name} with {username} as {role}")


@projects.command("unshare")
@click.argument("project_id")
@click.argument("username")
def projects_unshare(project_id, username):
    """Take a user's access to a project away (their live streams end within a second)."""
    with _Reported():
        project = accounts.find_project(project_id)
        accounts.unshare_project(project, username)
    click.echo(f"project {project.name} is no longer shared with {username}")


@sessions.command("share")
@click.argument("session_id")
@click.option("--hours", type=float, default=accounts.DEFAULT_LINK_HOURS, show_default=True)
def sessions_share(session_id, hours):
    """Make a read-only link to one session; prints its URL path last."""
    with _Reported():
        session = accounts.find_session(session_id)
        _, path = accounts.create_session_link(session, session.project.user_id, hours)
    click.echo(f"read-only link to session {session.id}, valid {hours:g} h:")
    click.echo(path)


@sessions.command("unshare")
@click.argument("session_id")
def sessions_unshare(session_id):
    """Revoke every read-only link to a session."""
    with _Reported():
        session = accounts.find_session(session_id)
        count = accounts.revoke_session_links(session)
    click.echo(f"revoked {count} link(s) to session {session.id}")
