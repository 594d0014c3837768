import shlex

from flask import abort, current_app, jsonify, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import and_, func, or_

from app import access, accounts, agent_dist, attachments, db, pairing
from app.main import bp
from app.main.forms import AgentActionForm, AgentForm, ProjectForm, agent_choices
from app.models import Agent, AuditEntry, ChatSession, Chunk, Command, Project, User
from protocol.events import PROJECT_PERMISSION_MODES

# A page of turns (GET /api/sessions/<id>/turns): at most this many turns, and no more
# answer text than this once it holds one turn, so that a long session opens fast.
TURNS_PAGE = 20
TURNS_PAGE_MAX = 100
TURNS_PAGE_CHARS = 200_000


def _user_agents():
    return db.session.scalars(
        db.select(Agent).filter_by(user_id=current_user.id, revoked_at=None).order_by(Agent.name)
    ).all()


def _user_projects():
    return db.session.scalars(
        db.select(Project).filter_by(user_id=current_user.id).order_by(Project.name)
    ).all()


def project_or_abort(project_id, need="view"):
    """The project if the current user's role has `need` (app/access.py); 404 or 403 otherwise."""
    try:
        return access.project_for(current_user.id, project_id, need)
    except access.NoAccess as error:
        abort(404 if error.code == "not_found" else 403)


def session_or_abort(session_id, need="view"):
    try:
        return access.session_for(current_user.id, session_id, need)
    except access.NoAccess as error:
        abort(404 if error.code == "not_found" else 403)


def start_command(agent, token):
    """The exact command that starts this agent on its machine."""
    words = ["python", "-m", "agent_client", "--server", _server(), "--token", token, "--name", agent.name]
    return shlex.join(words)  # pasted into a shell as is, whatever the agent's name


def _server():
    return request.host_url.rstrip("/")


def pairing_notice(agent, code):
    """What the dashboard shows after issuing a code: one command for a fresh machine, and more."""
    wheel = agent_dist.current(current_app)
    return {
        "agent": agent,
        "code": code,
        "minutes": current_app.config["PAIRING_CODE_MINUTES"],
        "command": agent_dist.install_command(_server(), wheel, code),
        "service_command": agent_dist.service_command(_server()),
    }


def _render_dashboard(
    agent_form=None, project_form=None, new_token=None, status=200, error=None, pairing=None
):
    agents = _user_agents()
    project_form = project_form or ProjectForm()
    project_form.agent_id.choices = agent_choices(agents)
    wheel = agent_dist.current(current_app)
    page = render_template(
        "dashboard.html",
        agents=agents,
        projects=_user_projects(),
        shared=[(project, role) for project, role in access.projects_of(current_user.id) if role != "owner"],
        agent_form=agent_form or AgentForm(),
        project_form=project_form,
        action_form=AgentActionForm(),
        new_token=new_token,
        pairing=pairing,
        server_version=wheel.version,
        update_command=agent_dist.update_command(_server(), wheel),
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
    """Register an agent and show the one command that installs and pairs it on its machine."""
    form = AgentForm()
    if not form.validate_on_submit():
        return _render_dashboard(agent_form=form, status=400, error="Give the agent a name.")
    try:
        agent, _ = accounts.create_agent(current_user, form.name.data)  # its first token is never shown
        code = pairing.issue_code(agent)
    except accounts.AccountError as error:
        return _render_dashboard(agent_form=form, status=400, error=str(error))
    return _render_dashboard(pairing=pairing_notice(agent, code))


def _owned_agent_or_404(agent_id):
    agent = db.session.get(Agent, agent_id)
    if agent is None or agent.user_id != current_user.id:
        abort(404)
    return agent


def _agent_for_action(agent_id):
    """The current user's agent named in a POSTed action form (400 without a valid form)."""
    if not AgentActionForm().validate_on_submit():
        abort(400)
    return _owned_agent_or_404(agent_id)


@bp.route("/agents/<agent_id>/revoke", methods=["POST"])
@login_required
def revoke_agent(agent_id):
    """Revoke an agent: its token stops working and its socket is closed."""
    accounts.revoke_agent(_agent_for_action(agent_id))
    return _render_dashboard()


@bp.route("/agents/<agent_id>/rotate", methods=["POST"])
@login_required
def rotate_agent(agent_id):
    """Issue a new token for an agent; the old one stops working."""
    agent = _agent_for_action(agent_id)
    token = accounts.rotate_token(agent)
    new_token = {"agent": agent, "token": token, "command": start_command(agent, token)}
    return _render_dashboard(new_token=new_token)


@bp.route("/agents/<agent_id>/pair", methods=["POST"])
@login_required
def pair_agent(agent_id):
    """A new pairing code for an agent: install it again, or move it to another machine."""
    agent = _agent_for_action(agent_id)
    try:
        code = pairing.issue_code(agent)
    except accounts.AccountError as error:
        return _render_dashboard(status=400, error=str(error))
    return _render_dashboard(pairing=pairing_notice(agent, code))


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
    project = project_or_abort(project_id)
    role = access.role_of(current_user.id, project)
    shared = len(access.people_of(project)) > 1
    return render_template(
        "chat.html", project=project, sessions=project_sessions(project), role=role, shared=shared
    )


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
    return jsonify(project_sessions(project_or_abort(project_id)))


@bp.route("/api/projects/<project_id>/settings", methods=["POST"])
@login_required
def project_settings(project_id):
    """Change a project's permission mode from the chat page (JSON, CSRF token in X-CSRFToken)."""
    project = project_or_abort(project_id, "own")
    mode = (request.get_json(silent=True) or {}).get("permissionMode")
    if mode not in PROJECT_PERMISSION_MODES:
        choices = ", ".join(PROJECT_PERMISSION_MODES)
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
    session = session_or_abort(session_id)
    rows = db.session.execute(
        db.select(Command, User.username)
        .join(User, User.id == Command.user_id)
        .filter(Command.session_id == session.id)
        .order_by(Command.created_at)
    ).all()
    files = attachments.described([c.id for c, _ in rows])
    return jsonify(
        [
            {
                "commandId": c.id,
                "text": c.text,
                "state": c.state,
                "error": c.error_message,
                "by": username,
                "model": c.model,
                "permissionMode": c.permission_mode,
                "attachments": files.get(c.id, []),
            }
            for c, username in rows
        ]
    )


@bp.route("/api/sessions/<session_id>/turns")
@login_required
def turns_json(session_id):
    """A page of a session's turns with their results: the last ones, or those before `before`."""
    session = session_or_abort(session_id)
    try:
        limit = min(max(int(request.args.get("limit", TURNS_PAGE)), 1), TURNS_PAGE_MAX)
    except ValueError:
        return _bad_request("limit must be a number")
    with_results = request.args.get("results", "1") != "0"
    # Read before the results: every result up to it is stored (seq and rows are
    # written in one transaction), so `subscribe {afterSeq: lastSeq}` goes on with no gap.
    last_seq = db.session.scalar(db.select(ChatSession.last_seq).filter_by(id=session.id)) or 0
    query = db.select(Command).filter_by(session_id=session.id)
    if request.args.get("before"):
        anchor = db.session.get(Command, request.args["before"])
        if anchor is None or anchor.session_id != session.id:
            abort(404)
        earlier = or_(
            Command.created_at < anchor.created_at,
            and_(Command.created_at == anchor.created_at, Command.id < anchor.id),
        )
        query = query.filter(earlier)
    newest_first = query.order_by(Command.created_at.desc(), Command.id.desc()).limit(limit + 1)
    commands = db.session.scalars(newest_first).all()
    older = len(commands) > limit
    commands = commands[:limit]
    results = {}
    if with_results and commands:
        kept = _within_text_budget(commands)
        older = older or len(kept) < len(commands)
        commands = kept
        results = _compact_results(commands, last_seq)
    senders = _senders(commands)
    files = attachments.described([c.id for c in commands])
    turns = [
        _turn(c, senders, results.get(c.id, []) if with_results else None, files.get(c.id, []))
        for c in reversed(commands)
    ]
    return jsonify({"sessionId": session.id, "lastSeq": last_seq, "turns": turns, "older": older})


def _bad_request(message):
    return jsonify({"ok": False, "error": {"code": "invalid_message", "message": message}}), 400


def _within_text_budget(commands):
    """The newest commands whose answers fit TURNS_PAGE_CHARS (always at least one)."""
    sizes = dict(
        db.session.execute(
            db.select(Chunk.command_id, func.sum(func.length(Chunk.response)))
            .filter(Chunk.command_id.in_([c.id for c in commands]))
            .group_by(Chunk.command_id)
        ).all()
    )
    kept, total = [], 0
    for command in commands:
        total += sizes.get(command.id) or 0
        if kept and total > TURNS_PAGE_CHARS:
            break
        kept.append(command)
    return kept


def _compact_results(commands, last_seq):
    """The commands' stored results up to last_seq, in seq order; runs of plain text merged."""
    chunks = db.session.scalars(
        db.select(Chunk)
        .filter(Chunk.command_id.in_([c.id for c in commands]), Chunk.seq <= last_seq)
        .order_by(Chunk.seq)
    )
    results = {}
    for chunk in chunks:
        merged = results.setdefault(chunk.command_id, [])
        last = merged[-1] if merged else None
        plain = chunk.status == "streaming" and chunk.event is None
        if plain and last and last["status"] == "streaming" and "event" not in last:
            last["response"] += chunk.response
            last["seq"] = chunk.seq
        else:
            merged.append(chunk.to_wire())
    return results


def _senders(commands):
    """Usernames by user id of who sent these commands (the page names them in shared projects)."""
    ids = {command.user_id for command in commands}
    return dict(db.session.execute(db.select(User.id, User.username).filter(User.id.in_(ids))).all())


def _turn(command, senders, results, files):
    error = None
    if command.error_code or command.error_message:
        error = {"code": command.error_code, "message": command.error_message}
    turn = {
        "commandId": command.id,
        "text": command.text,
        "state": command.state,
        "error": error,
        "createdAt": command.created_at.isoformat() + "Z",
        "by": senders.get(command.user_id),
        "model": command.model,
        "permissionMode": command.permission_mode,
        "attachments": files,
    }
    if results is not None:
        turn["results"] = results
    return turn


@bp.route("/projects/<project_id>/audit")
@login_required
def audit_log(project_id):
    """Who ran what and who allowed or denied which tool in this project."""
    project = project_or_abort(project_id, "operate")
    entries = db.session.scalars(
        db.select(AuditEntry).filter_by(project_id=project.id).order_by(AuditEntry.id.desc()).limit(500)
    ).all()
    return render_template("audit.html", project=project, entries=entries)
