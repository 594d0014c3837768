"""Admin commands: `flask --app wsgi users|agents|projects ...`.

Each prints its result's identifier as its last line, and fails with a one-line
reason on stderr and a non-zero exit.
"""

from datetime import timedelta

import click
from flask.cli import AppGroup

from app import accounts, db
from app.models import Agent, utcnow

users = AppGroup("users", help="Manage users.")
agents = AppGroup("agents", help="Manage agents and their tokens.")
projects = AppGroup("projects", help="Manage projects.")


def register(app):
    from app import devrun

    for group in (users, agents, projects):
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


@agents.command("revoke")
@click.argument("username")
@click.argument("agent_name")
def agents_revoke(username, agent_name):
    """Revoke an agent's token; a connected agent is disconnected."""
    from app.presence import disconnect_agent

    with _Reported():
        agent = accounts.find_agent(accounts.find_user(username), agent_name)
    accounts.revoke_agent(agent)
    disconnect_agent(agent)
    click.echo(f"revoked agent {agent.name}")


@agents.command("rotate")
@click.argument("username")
@click.argument("agent_name")
def agents_rotate(username, agent_name):
    """Issue a new token for an agent (the old one stops working); prints it last."""
    from app.presence import disconnect_agent

    with _Reported():
        agent = accounts.find_agent(accounts.find_user(username), agent_name)
    token = accounts.rotate_token(agent)
    disconnect_agent(agent)
    click.echo(f"new token for agent {agent.name}, shown once:")
    click.echo(token)


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
