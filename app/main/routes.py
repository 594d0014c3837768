import shlex

from flask import abort, jsonify, render_template, request
from flask_login import current_user, login_required

from app import accounts, db
from app.main import bp
from app.main.forms import AgentActionForm, AgentForm, ProjectForm, agent_choices
from app.models import Agent, AuditEntry, ChatSession, Command, Project


def _user_agents():
    return db.session.scalars(
        db.select(Agent).filter_by(user_id=current_user.id, revoked_at=None).order_by(Agent.name)
    ).all()


def _user_projects():
    return db.session.scalars(
        db.select(Project).filter_by(user_id=current_user.id).order_by(Project.name)
    ).all()


def owned_project_or_404(project_id):
    project = db.session.get(Project, project_id)
    if project is None or project.user_id != current_user.id:
        abort(404)
    return project


def start_command(agent, token):
    """The exact command that starts this agent on its machine."""
    server = request.host_url.rstrip("/")
    words = ["python", "-m", "agent_client", "--server", server, "--token", token, "--name", agent.name]
    return shlex.join(words)  # pasted into a shell as is, whatever the agent's name


def _render_dashboard(agent_form=None, project_form=None, new_token=None, status=200, error=None):
    agents = _user_agents()
    project_form = project_form or ProjectForm()
    project_form.agent_id.choices = agent_choices(agents)
    page = render_template(
        "dashboard.html",
        agents=agents,
        projects=_user_projects(),
        agent_form=agent_form or AgentForm(),
        project_form=project_form,
        action_form=AgentActionForm(),
        new_token=new_token,
        error=error,
    )
    return page, status


@bp.route("/")
@login_required
def dashboard():
    """The user's agents and projects."""
    return _render_dashboard()


@bp.route("/agents", methods=["POST"])
@login_required
def add_agent():
    """Register an agent; its token and start command are shown once."""
    form = AgentForm()
    if not form.validate_on_submit():
        return _render_dashboard(agent_form=form, status=400, error="Give the agent a name.")
    try:
        agent, token = accounts.create_agent(current_user, form.name.data)
    except accounts.AccountError as error:
        return _render_dashboard(agent_form=form, status=400, error=str(error))
    new_token = {"agent": agent, "token": token, "command": start_command(agent, token)}
    return _render_dashboard(new_token=new_token)


def _owned_agent_or_404(agent_id):
    agent = db.session.get(Agent, agent_id)
    if agent is None or agent.user_id != current_user.id:
        abort(404)
    return agent


@bp.route("/agents/<agent_id>/revoke", methods=["POST"])
@login_required
def revoke_agent(agent_id):
    """Revoke an agent: its token stops working and its socket is closed."""
    from app.presence import disconnect_agent

    if not AgentActionForm().validate_on_submit():
        abort(400)
    agent = _owned_agent_or_404(agent_id)
    accounts.revoke_agent(agent)
    disconnect_agent(agent)
    return _render_dashboard()


@bp.route("/agents/<agent_id>/rotate", methods=["POST"])
@login_required
def rotate_agent(agent_id):
    """Issue a new token for an agent; the old one stops working."""
    from app.presence import disconnect_agent

    if not AgentActionForm().validate_on_submit():
        abort(400)
    agent = _owned_agent_or_404(agent_id)
    token = accounts.rotate_token(agent)
    disconnect_agent(agent)
    new_token = {"agent": agent, "token": token, "command": start_command(agent, token)}
    return _render_dashboard(new_token=new_token)


@bp.route("/projects", methods=["POST"])
@login_required
def add_project():
    """Create a project bound to one of the user's agents and a directory there."""
    form = ProjectForm()
    form.agent_id.choices = agent_choices(_user_agents())
    if form.agent_id.data:
        _owned_agent_or_404(form.agent_id.data)  # somebody else's agent is not even there
    if not form.validate_on_submit():
        return _render_dashboard(project_form=form, status=400, error="Fill in every field.")
    agent = _owned_agent_or_404(form.agent_id.data)
    try:
        accounts.create_project(
            current_user, agent, form.name.data, form.path.data, form.permission_mode.data
        )
    except accounts.AccountError as error:
        return _render_dashboard(project_form=form, status=400, error=str(error))
    return _render_dashboard()


@bp.route("/projects/<project_id>")
@login_required
def chat(project_id):
    """The chat page of a project."""
    project = owned_project_or_404(project_id)
    return render_template("chat.html", project=project, sessions=project_sessions(project))


def project_sessions(project):
    """The project's sessions, newest first, with the state of their last command."""
    sessions = db.session.scalars(
        db.select(ChatSession)
        .filter_by(project_id=project.id)
        .order_by(ChatSession.updated_at.desc())
        .limit(100)
    ).all()
    result = []
    for session in sessions:
        last = db.session.scalar(
            db.select(Command.state)
            .filter_by(session_id=session.id)
            .order_by(Command.created_at.desc())
            .limit(1)
        )
        result.append(
            {
                "id": session.id,
                "title": session.title or "Untitled",
                "state": last or "new",
                "updatedAt": session.updated_at.isoformat() + "Z",
            }
        )
    return result


@bp.route("/api/projects/<project_id>/sessions")
@login_required
def sessions_json(project_id):
    """The project's sessions as JSON, for the chat page's session list."""
    return jsonify(project_sessions(owned_project_or_404(project_id)))


@bp.route("/api/projects/<project_id>/settings", methods=["POST"])
@login_required
def project_settings(project_id):
    """Change a project's permission mode from the chat page (JSON, CSRF token in X-CSRFToken)."""
    project = owned_project_or_404(project_id)
    mode = (request.get_json(silent=True) or {}).get("permissionMode")
    if mode not in accounts.PERMISSION_MODES:
        choices = ", ".join(accounts.PERMISSION_MODES)
        error = {"code": "invalid_message", "message": f"permissionMode must be one of {choices}"}
        return jsonify({"ok": False, "error": error}), 400
    project.permission_mode = mode
    accounts.audit(project.id, current_user.id, "settings", f"permission mode {mode}")
    db.session.commit()
    return jsonify({"ok": True, "permissionMode": mode})


@bp.route("/api/sessions/<session_id>/commands")
@login_required
def commands_json(session_id):
    """Delivery state of every command of a session."""
    session = db.session.get(ChatSession, session_id)
    if session is None or session.project.user_id != current_user.id:
        abort(404)
    commands = db.session.scalars(
        db.select(Command).filter_by(session_id=session.id).order_by(Command.created_at)
    )
    return jsonify(
        [{"commandId": c.id, "text": c.text, "state": c.state, "error": c.error_message} for c in commands]
    )


@bp.route("/projects/<project_id>/audit")
@login_required
def audit_log(project_id):
    """Who ran what and who allowed or denied which tool in this project."""
    project = owned_project_or_404(project_id)
    entries = db.session.scalars(
        db.select(AuditEntry).filter_by(project_id=project.id).order_by(AuditEntry.id.desc()).limit(500)
    ).all()
    return render_template("audit.html", project=project, entries=entries)
