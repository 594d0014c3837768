"""The dashboard, its forms, the chat and audit pages and the JSON endpoints behind them."""

import html
import re
import shlex
from datetime import timedelta

import pytest

from app import agent_dist, db, pairing
from app.accounts import audit, create_agent, find_user
from app.models import Agent, ChatSession, Command, PairingCode, Project, hash_token, utcnow
from tests.conftest import make_seed


def log_in(client, seed):
    reply = client.post("/login", data={"username": seed.username, "password": seed.password})
    assert reply.status_code == 302
    return client


@pytest.fixture
def other(app, tmp_path):
    """A second user, bob, with an agent and a project of his own."""
    path = tmp_path / "bob"
    path.mkdir()
    return make_seed(app, str(path), username="bob", agent_name="bobs-laptop")


def make_chat_session(app, seed, title="Fix the tests", states=("done",), age_minutes=0):
    """A session of the seed's project with one command per state; returns (session id, command ids)."""
    with app.app_context():
        when = utcnow() - timedelta(minutes=age_minutes)
        session = ChatSession(project_id=seed.project_id, title=title, created_at=when, updated_at=when)
        db.session.add(session)
        db.session.flush()
        commands = []
        for index, state in enumerate(states):
            command = Command(
                session_id=session.id,
                user_id=seed.user_id,
                agent_id=seed.agent_id,
                text=f"{title} #{index}",
                working_directory=seed.project_path,
                state=state,
                created_at=when + timedelta(seconds=index),
            )
            db.session.add(command)
            db.session.flush()
            commands.append(command.id)
        db.session.commit()
        return session.id, commands


def page_text(reply):
    return reply.get_data(as_text=True)


def agent_elements(reply):
    """{agent id: status} for every agent element of the dashboard."""
    tags = re.findall(r"<[^>]*data-agent-id=[^>]*>", page_text(reply))
    found = {}
    for tag in tags:
        agent_id = re.search(r'data-agent-id="([^"]+)"', tag).group(1)
        found[agent_id] = re.search(r'data-agent-status="([^"]+)"', tag).group(1)
    return found


def project_links(reply):
    return re.findall(r'<a[^>]*href="(/projects/[^"/?]+)"', page_text(reply))


def shown(reply, testid):
    """The text of the element with data-testid=`testid`, unescaped, or None."""
    match = re.search(rf'data-testid="{testid}"[^>]*>([^<]*)<', page_text(reply))
    return match and html.unescape(match.group(1)).strip()


def start_command(reply):
    return shown(reply, "start-command")


def count(app, model, **filters):
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(model).filter_by(**filters))


# -- dashboard -------------------------------------------------------------------


def test_dashboard_lists_the_users_agents_with_their_status(app, client, seed, other):
    with app.app_context():
        desktop = Agent(user_id=seed.user_id, name="desktop", sid="socket-1")
        desktop.set_token("desktop-token")
        db.session.add(desktop)
        db.session.commit()
        desktop_id = desktop.id
    reply = log_in(client, seed).get("/")
    assert reply.status_code == 200
    assert agent_elements(reply) == {seed.agent_id: "offline", desktop_id: "online"}


def test_dashboard_leaves_out_revoked_agents(app, client, seed):
    log_in(client, seed)
    client.post(f"/agents/{seed.agent_id}/revoke")
    assert agent_elements(client.get("/")) == {}


def test_dashboard_lists_the_users_projects_with_links_to_their_chat_pages(client, seed, other):
    reply = log_in(client, seed).get("/")
    assert project_links(reply) == [f"/projects/{seed.project_id}"]
    assert f"{seed.username}-project" in page_text(reply)
    assert other.project_id not in page_text(reply)
    assert client.get(project_links(reply)[0]).status_code == 200


# -- adding agents -------------------------------------------------------------------


def test_adding_an_agent_shows_one_command_that_installs_and_pairs_it(app, client, seed):
    log_in(client, seed)
    reply = client.post("/agents", data={"name": "desktop"})
    assert reply.status_code == 200
    code = shown(reply, "pairing-code")
    wheel = agent_dist.current(app).filename
    assert shown(reply, "install-command") == (
        "python3 -m venv ~/.tether-agent"
        f" && ~/.tether-agent/bin/pip install http://localhost/agent/{wheel}"
        f" && ~/.tether-agent/bin/tether-agent --server http://localhost --pair {code}"
    )
    assert shown(reply, "service-command") == (
        "~/.tether-agent/bin/tether-agent install-service --server http://localhost"
    )
    assert 'data-testid="token"' not in page_text(reply)  # no long-lived secret on the page
    with app.app_context():
        agent = db.session.scalar(db.select(Agent).filter_by(name="desktop"))
        stored = db.session.scalar(db.select(PairingCode).filter_by(agent_id=agent.id))
        assert stored.code_hash == pairing.hash_code(pairing.normalise(code))
    assert agent.id in agent_elements(reply)

    again = client.get("/")
    assert code not in page_text(again)
    assert 'data-testid="pairing"' not in page_text(again)
    assert agent.id in agent_elements(again)


def test_pairing_an_existing_agent_on_the_dashboard_shows_a_new_code(app, client, seed, other):
    log_in(client, seed)
    first = shown(client.post(f"/agents/{seed.agent_id}/pair"), "pairing-code")
    second = shown(client.post(f"/agents/{seed.agent_id}/pair"), "pairing-code")
    assert first != second
    with app.test_request_context(), pytest.raises(pairing.PairingRefused):
        pairing.trade(first, "192.0.2.1")  # withdrawn by the second
    with app.app_context():
        assert db.session.get(Agent, seed.agent_id).token_hash == hash_token(seed.token)  # until a trade
    assert client.post(f"/agents/{other.agent_id}/pair").status_code == 404


def shell_words(command):
    """The words a POSIX shell would see, with ; & | ( ) as words of their own."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def test_install_command_uses_the_address_the_browser_used(client, seed):
    base = "https://tether.example:8443"
    data = {"username": seed.username, "password": seed.password}
    assert client.post("/login", data=data, base_url=base).status_code == 302
    reply = client.post("/agents", data={"name": "desktop"}, base_url=base)
    words = shell_words(shown(reply, "install-command"))
    assert words[7].startswith(f"{base}/agent/tether_agent-")
    assert words[10:12] == ["--server", base]


@pytest.mark.parametrize("name", ["my laptop", "bob's box", "a;b"])
def test_start_command_of_a_new_token_can_be_pasted_into_a_shell_for_any_agent_name(app, client, seed, name):
    with app.app_context():
        agent_id = create_agent(find_user(seed.username), name)[0].id
    log_in(client, seed)
    reply = client.post(f"/agents/{agent_id}/rotate")
    assert reply.status_code == 200
    command = start_command(reply)
    token = html.unescape(re.search(r'data-testid="token"[^>]*>([^<]+)<', page_text(reply)).group(1))
    try:
        argv = shell_words(command)
    except ValueError:
        argv = None
    assert argv == [
        "python",
        "-m",
        "agent_client",
        "--server",
        "http://localhost",
        "--token",
        token,
        "--name",
        name,
    ], f"BUG: the start command does not quote the agent name for the shell: {command!r}"


def test_adding_an_agent_with_a_taken_or_empty_name_is_refused(app, client, seed):
    log_in(client, seed)
    taken = client.post("/agents", data={"name": seed.agent_name})
    assert taken.status_code == 400
    assert "already has an agent named" in html.unescape(page_text(taken))
    assert 'data-testid="token"' not in page_text(taken)
    assert client.post("/agents", data={"name": ""}).status_code == 400
    assert count(app, Agent) == 1


def test_rotating_an_agent_on_the_dashboard_shows_a_new_token_once(app, client, seed):
    log_in(client, seed)
    reply = client.post(f"/agents/{seed.agent_id}/rotate")
    assert reply.status_code == 200
    token = html.unescape(re.search(r'data-testid="token"[^>]*>([^<]+)<', page_text(reply)).group(1))
    assert token != seed.token
    with app.app_context():
        assert db.session.get(Agent, seed.agent_id).token_hash == hash_token(token)
    assert token not in page_text(client.get("/"))


@pytest.mark.parametrize("action", ["rotate", "revoke"])
def test_another_users_agent_cannot_be_rotated_or_revoked(app, client, seed, other, action):
    log_in(client, seed)
    assert client.post(f"/agents/{other.agent_id}/{action}").status_code == 404
    assert client.post(f"/agents/no-such-agent/{action}").status_code == 404
    with app.app_context():
        agent = db.session.get(Agent, other.agent_id)
        assert agent.token_hash == hash_token(other.token) and agent.revoked_at is None


def test_agent_actions_are_post_only(client, seed):
    log_in(client, seed)
    for action in ("rotate", "revoke"):
        assert client.get(f"/agents/{seed.agent_id}/{action}").status_code == 405


# -- adding projects --------------------------------------------------------------------


def make_project_form(agent_id, name="api", path="/srv/api", permission_mode="default"):
    return {"name": name, "agent_id": agent_id, "path": path, "permission_mode": permission_mode}


def test_adding_a_project_lists_it_with_a_link(app, client, seed):
    log_in(client, seed)
    reply = client.post("/projects", data=make_project_form(seed.agent_id, permission_mode="acceptEdits"))
    assert reply.status_code == 200
    with app.app_context():
        project = db.session.scalar(db.select(Project).filter_by(name="api"))
        assert (project.path, project.agent_id, project.permission_mode) == (
            "/srv/api",
            seed.agent_id,
            "acceptEdits",
        )
    assert f"/projects/{project.id}" in project_links(reply)


@pytest.mark.parametrize("path", ["srv/api", "./api", "api"])
def test_adding_a_project_needs_an_absolute_path(app, client, seed, path):
    log_in(client, seed)
    reply = client.post("/projects", data=make_project_form(seed.agent_id, path=path))
    assert reply.status_code == 400
    assert "project path must be absolute" in html.unescape(page_text(reply))
    assert count(app, Project) == 1


def test_adding_a_project_with_a_taken_name_or_missing_field_is_refused(app, client, seed):
    log_in(client, seed)
    taken = make_project_form(seed.agent_id, name=f"{seed.username}-project")
    assert client.post("/projects", data=taken).status_code == 400
    assert client.post("/projects", data=make_project_form(seed.agent_id, path="")).status_code == 400
    bad_mode = make_project_form(seed.agent_id, permission_mode="bypassPermissions")
    assert client.post("/projects", data=bad_mode).status_code == 400
    assert count(app, Project) == 1


def test_adding_a_project_on_another_users_agent_is_refused(app, client, seed, other):
    log_in(client, seed)
    reply = client.post("/projects", data=make_project_form(other.agent_id))
    assert reply.status_code in (400, 404)
    assert count(app, Project, user_id=seed.user_id) == 1
    assert count(app, Project, agent_id=other.agent_id) == 1  # bob's own project only


def test_adding_a_project_on_another_users_agent_answers_404(client, seed, other):
    log_in(client, seed)
    reply = client.post("/projects", data=make_project_form(other.agent_id))
    assert reply.status_code == 404, (
        f"BUG: answered {reply.status_code}; the form's agent choices refuse the id first "
        "('Fill in every field.'), so the route's own 404 check is never reached"
    )


# -- project pages ------------------------------------------------------------------------


def test_chat_page_of_own_project_is_served(client, seed):
    reply = log_in(client, seed).get(f"/projects/{seed.project_id}")
    assert reply.status_code == 200
    text = page_text(reply)
    for hook in ("connection-status", "prompt", "send", "messages"):
        assert f'data-testid="{hook}"' in text


def test_another_users_project_page_is_404(client, seed, other):
    log_in(client, seed)
    assert client.get(f"/projects/{other.project_id}").status_code == 404
    assert client.get("/projects/no-such-project").status_code == 404


def test_audit_page_shows_the_projects_entries_to_its_owner_only(app, client, seed, other):
    with app.app_context():
        audit(seed.project_id, seed.user_id, "command", "run the migrations")
        audit(other.project_id, other.user_id, "command", "bobs secret plan")
        db.session.commit()
    log_in(client, seed)
    reply = client.get(f"/projects/{seed.project_id}/audit")
    assert reply.status_code == 200
    assert "run the migrations" in page_text(reply)
    assert "bobs secret plan" not in page_text(reply)
    assert client.get(f"/projects/{other.project_id}/audit").status_code == 404


# -- JSON endpoints ------------------------------------------------------------------------


def test_project_sessions_are_json_newest_first_with_their_last_state(app, client, seed):
    old_id, _ = make_chat_session(app, seed, "Old work", states=("done",), age_minutes=10)
    new_id, _ = make_chat_session(app, seed, "New work", states=("done", "running"))
    reply = log_in(client, seed).get(f"/api/projects/{seed.project_id}/sessions")
    assert reply.status_code == 200
    assert reply.mimetype == "application/json"
    sessions = reply.get_json()
    assert [(s["id"], s["title"], s["state"]) for s in sessions] == [
        (new_id, "New work", "running"),
        (old_id, "Old work", "done"),
    ]
    assert all(s["updatedAt"].endswith("Z") for s in sessions)


def test_session_commands_are_json_in_order(app, client, seed):
    session_id, command_ids = make_chat_session(app, seed, "Work", states=("done", "failed", "queued"))
    reply = log_in(client, seed).get(f"/api/sessions/{session_id}/commands")
    assert reply.status_code == 200
    assert reply.mimetype == "application/json"
    commands = reply.get_json()
    assert [(c["commandId"], c["state"]) for c in commands] == list(
        zip(command_ids, ["done", "failed", "queued"], strict=True)
    )
    assert commands[0]["text"] == "Work #0"


def test_json_endpoints_are_owner_only(app, client, seed, other):
    session_id, _ = make_chat_session(app, other, "Bob's session")
    log_in(client, seed)
    for path in (f"/api/projects/{other.project_id}/sessions", f"/api/sessions/{session_id}/commands"):
        reply = client.get(path)
        assert reply.status_code == 404
        assert reply.mimetype == "application/json"
        assert reply.get_json()["ok"] is False
        assert "Bob's session" not in page_text(reply)
    assert client.get("/api/sessions/no-such-session/commands").status_code == 404


def test_json_endpoints_need_a_login(app, client, seed):
    session_id, _ = make_chat_session(app, seed, "Private")
    for path in (f"/api/projects/{seed.project_id}/sessions", f"/api/sessions/{session_id}/commands"):
        reply = client.get(path)
        assert reply.status_code in (302, 401)
        assert "Private" not in page_text(reply)


def test_permission_mode_is_changed_from_the_chat_page_and_audited(client, seed):
    log_in(client, seed)
    url = f"/api/projects/{seed.project_id}/settings"
    assert client.post(url, json={"permissionMode": "acceptEdits"}).get_json() == {
        "ok": True,
        "permissionMode": "acceptEdits",
    }
    refused = client.post(url, json={"permissionMode": "bypassPermissions"})
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "invalid_message"
    assert "permission mode acceptEdits" in page_text(client.get(f"/projects/{seed.project_id}/audit"))


def test_permission_mode_of_another_users_project_cannot_be_changed(client, seed, other):
    log_in(client, seed)
    assert (
        client.post(f"/api/projects/{other.project_id}/settings", json={"permissionMode": "plan"}).status_code
        == 404
    )


def test_chat_page_says_demo_when_its_agent_runs_the_demo_model(app, client, seed):
    log_in(client, seed)
    badge = re.compile(r'<span class="badge" data-testid="demo-badge"[^>]*>')
    # Always there, hidden unless the agent said it is the demo (agent_status shows it live).
    assert "hidden" in badge.search(page_text(client.get(f"/projects/{seed.project_id}"))).group()
    with app.app_context():
        db.session.get(Agent, seed.agent_id).demo = True
        db.session.commit()
    assert "hidden" not in badge.search(page_text(client.get(f"/projects/{seed.project_id}"))).group()
