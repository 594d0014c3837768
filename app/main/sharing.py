"""Sharing a project (members, read-only links), the read-only link page, and the account page."""

from flask import abort, flash, jsonify, redirect, render_template, session, url_for
from flask_login import current_user, login_required, logout_user
from wtforms.fields.choices import SelectChoice

from app import access, accounts, db
from app.main import bp
from app.main.forms import AgentActionForm, LinkForm, PasswordForm, ShareForm
from app.main.routes import project_or_abort
from app.models import ChatSession, Command, SessionLink


def _recent_sessions(project, limit=50):
    return db.session.scalars(
        db.select(ChatSession)
        .filter_by(project_id=project.id)
        .order_by(ChatSession.updated_at.desc())
        .limit(limit)
    ).all()


def _render_sharing(project, share_form=None, link_form=None, new_link=None, error=None, status=200):
    sessions = _recent_sessions(project)
    link_form = link_form or LinkForm()
    link_form.session_id.choices = [SelectChoice(s.id, s.title or "Untitled") for s in sessions]
    page = render_template(
        "sharing.html",
        project=project,
        members=accounts.members_of(project),
        links=accounts.session_links([s.id for s in sessions]),
        share_form=share_form or ShareForm(),
        link_form=link_form,
        action_form=AgentActionForm(),
        new_link=new_link,
        error=error,
    )
    return page, status


def _owned_for_action(project_id):
    """The current user's own project named in a POSTed button form (400 without a valid form)."""
    project = project_or_abort(project_id, "own")
    if not AgentActionForm().validate_on_submit():
        abort(400)
    return project


@bp.route("/projects/<project_id>/sharing")
@login_required
def sharing(project_id):
    """Who may see or work in this project, and its read-only links (the owner's page)."""
    return _render_sharing(project_or_abort(project_id, "own"))


@bp.route("/projects/<project_id>/sharing/members", methods=["POST"])
@login_required
def share(project_id):
    """Share the project with a user, or change their role."""
    project = project_or_abort(project_id, "own")
    form = ShareForm()
    if not form.validate_on_submit():
        return _render_sharing(project, share_form=form, error="Give a username and a role.", status=400)
    try:
        accounts.share_project(project, form.username.data.strip(), form.role.data, current_user.id)
    except accounts.AccountError as error:
        return _render_sharing(project, share_form=form, error=str(error), status=400)
    return redirect(url_for("main.sharing", project_id=project.id))


@bp.route("/projects/<project_id>/sharing/members/<username>/remove", methods=["POST"])
@login_required
def unshare(project_id, username):
    """Take a member's access away (their live streams end within a second)."""
    project = _owned_for_action(project_id)
    try:
        accounts.unshare_project(project, username, current_user.id)
    except accounts.AccountError as error:
        return _render_sharing(project, error=str(error), status=400)
    return redirect(url_for("main.sharing", project_id=project.id))


@bp.route("/projects/<project_id>/sharing/links", methods=["POST"])
@login_required
def add_link(project_id):
    """Make a read-only link to one session of the project; shown once."""
    project = project_or_abort(project_id, "own")
    form = LinkForm()
    form.session_id.choices = [SelectChoice(s.id, s.title) for s in _recent_sessions(project)]
    if not form.validate_on_submit():
        return _render_sharing(project, link_form=form, error="Pick a session.", status=400)
    shared = db.session.get(ChatSession, form.session_id.data)
    _, path = accounts.create_session_link(shared, current_user.id, float(form.hours.data))
    return _render_sharing(project, new_link=url_for("main.dashboard", _external=True).rstrip("/") + path)


@bp.route("/projects/<project_id>/sharing/links/<link_id>/revoke", methods=["POST"])
@login_required
def revoke_link(project_id, link_id):
    """Revoke one read-only link: whoever has it open sees nothing more within a second."""
    project = _owned_for_action(project_id)
    link = db.session.get(SessionLink, link_id)
    if link is None or link.session.project_id != project.id:
        abort(404)
    accounts.revoke_session_links(link.session, current_user.id, link_id=link.id)
    return redirect(url_for("main.sharing", project_id=project.id))


@bp.route("/s/<token>")
def shared_session(token):
    """A read-only link: one session's answers, live, without signing in."""
    link = access.link_for(token)
    if link is None:
        abort(404)
    return render_template("shared_session.html", session=link.session, token=token)


@bp.route("/s/<token>/commands")
def shared_session_commands(token):
    """The prompts of a read-only link's session (its page shows them above the answers)."""
    link = access.link_for(token)
    if link is None:
        abort(404)
    commands = db.session.scalars(
        db.select(Command).filter_by(session_id=link.session_id).order_by(Command.created_at)
    )
    return jsonify([{"commandId": c.id, "text": c.text, "state": c.state} for c in commands])


def account_context():
    """What the account page (app/notifications/routes.py) shows of logins and the password."""
    return {
        "logins": accounts.active_logins(current_user.id),
        "current_login": session.get("login_id"),
        "password_form": PasswordForm(),
        "action_form": AgentActionForm(),
    }


@bp.route("/account/password", methods=["POST"])
@login_required
def change_password():
    """Change the password; every login of the user ends (their sockets close within a second)."""
    form = PasswordForm()
    if not form.validate_on_submit():
        flash("A password has at least 8 characters.")
        return redirect(url_for("notifications.account"))
    accounts.set_password(current_user.username, form.password.data)
    logout_user()
    flash("Password changed: every login ended. Sign in with the new password.")
    return redirect(url_for("auth.login"))


@bp.route("/account/sign-out-everywhere", methods=["POST"])
@login_required
def sign_out_everywhere():
    """End every login of the current user, this one too; their sockets close within a second."""
    if not AgentActionForm().validate_on_submit():
        abort(400)
    accounts.end_logins(current_user.id)
    logout_user()
    flash("Signed out everywhere.")
    return redirect(url_for("auth.login"))
