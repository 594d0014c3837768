"""Sharing a project: every role against every /web event, page and JSON endpoint.

Alice owns a project with a running command and a pending permission. Carol is
an operator, Victor a viewer, Fred a former member (shared, then unshared), Sam a
stranger, and Lena holds a read-only link to the session. Each event is checked
against the role as it is in the database when the event arrives.
"""

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from app import accounts, db, presence
from app.models import AuditEntry, ChatSession, Command, PermissionRequest, Project, User
from tests.conftest import PASSWORD, make_user
from tests.sockets import Socket, assert_refused, chunk

NAMES = {"operator": "carol", "viewer": "victor", "former": "fred", "stranger": "sam"}


@dataclass
class Team:
    seed: object  # alice's
    agent: Socket
    command: dict  # the running command: {sessionId, commandId}
    request_id: str
    people: dict  # who -> Socket on /web
    other_session_id: str  # another session of alice's project, not the link's
    link_path: str


@pytest.fixture
def team(app, seed, sockets):
    agent = sockets.agent(seed.token)
    owner = sockets.browser(seed)
    other = owner.call("execute_command", projectId=seed.project_id, command="say: first")
    assert agent.call("command_response", chunk(other, 1, "one", complete=True))["ok"]
    run = owner.call("execute_command", projectId=seed.project_id, command="say: secret")
    command = {"sessionId": run["sessionId"], "commandId": run["commandId"]}
    assert agent.call("command_response", chunk(command, 1, "first words"))["ok"]
    request = {"requestId": "req-1", "toolName": "Bash", "input": {"command": "ls"}}
    assert agent.call("permission_request", **command, **request)["ok"]
    with app.app_context():
        for name in NAMES.values():
            make_user(name)
        project = db.session.get(Project, seed.project_id)
        accounts.share_project(project, "carol", "operator")
        accounts.share_project(project, "victor", "viewer")
        accounts.share_project(project, "fred", "operator")
        accounts.unshare_project(project, "fred")
        _, path = accounts.create_session_link(
            db.session.get(ChatSession, command["sessionId"]), seed.user_id
        )
    for socket in (agent, owner):
        socket.forget()
    people = People(sockets, owner, path.rsplit("/", 1)[1])
    return Team(seed, agent, command, "req-1", people, other["sessionId"], path)


class People(dict):
    """Who -> their Socket on /web, signed in when a test first asks for them: most tests act
    as one person, and signing five in for each of them was most of the matrix's time."""

    def __init__(self, sockets, owner, link_token):
        super().__init__(owner=owner)
        self.sockets = sockets
        self.link_token = link_token

    def __missing__(self, who):
        if who == "link":
            socket = self.sockets.link(self.link_token)
        else:
            socket = self.sockets.browser(SimpleNamespace(username=NAMES[who], password=PASSWORD))
        socket.forget()
        self[who] = socket
        return socket


def snapshot(app, team):
    """Everything of alice's that a refused event must leave as it was."""
    with app.app_context():
        request = db.session.get(PermissionRequest, team.request_id)
        return {
            "commands": db.session.scalar(db.select(db.func.count(Command.id))),
            "state": db.session.get(Command, team.command["commandId"]).state,
            "decision": request.decision,
            "audit": db.session.scalar(db.select(db.func.count(AuditEntry.id))),
        }


def attempt(team, event):
    session_id = team.command["sessionId"]
    fields = {
        "execute_command": {"projectId": team.seed.project_id, "command": "say: mine now"},
        "subscribe": {"sessionId": session_id, "afterSeq": 0},
        "unsubscribe": {"sessionId": session_id},
        "cancel_command": {"sessionId": session_id},
        "permission_response": {"sessionId": session_id, "requestId": team.request_id, "decision": "allow"},
    }[event]
    return event, fields


# The answer each person gets: True (ok) or the refusal's code.
EXPECTED = {
    "execute_command": {"owner": True, "operator": True, "viewer": "forbidden", "link": "forbidden"},
    "subscribe": {"owner": True, "operator": True, "viewer": True, "link": True},
    "unsubscribe": {"owner": True, "operator": True, "viewer": True, "link": True},
    "cancel_command": {"owner": True, "operator": True, "viewer": "forbidden", "link": "forbidden"},
    "permission_response": {"owner": True, "operator": True, "viewer": "forbidden", "link": "forbidden"},
}
PEOPLE = ("owner", "operator", "viewer", "former", "stranger", "link")


@pytest.mark.parametrize("who", PEOPLE)
@pytest.mark.parametrize("event", sorted(EXPECTED))
def test_every_role_gets_exactly_its_rights_on_every_event(app, team, event, who):
    expected = EXPECTED[event].get(who, "not_found")  # former members and strangers see nothing
    before = snapshot(app, team)
    name, fields = attempt(team, event)
    reply = team.people[who].call(name, **fields)
    if expected is True:
        assert reply["ok"], reply
        return
    assert_refused(reply, expected)
    assert snapshot(app, team) == before
    assert team.agent.received() == []  # the agent was told nothing


def test_a_link_follows_its_own_session_and_no_other(app, team):
    link = team.people["link"]
    assert link.call("subscribe", sessionId=team.command["sessionId"], afterSeq=0)["ok"]
    assert [r["response"] for r in link.received("command_result")] == ["first words"]
    assert_refused(link.call("subscribe", sessionId=team.other_session_id, afterSeq=0), "not_found")


def test_a_viewer_sees_the_stream_and_the_pending_permission_but_cannot_answer(app, team):
    viewer = team.people["viewer"]
    assert viewer.call("subscribe", sessionId=team.command["sessionId"], afterSeq=0)["ok"]
    assert viewer.wait_for("permission_request")[0]["requestId"] == team.request_id
    assert team.agent.call("command_response", chunk(team.command, 2, " more"))["ok"]
    viewer.wait_for("command_result", lambda r: r["seq"] == 2)


def test_an_operators_answer_names_them_to_every_subscriber(app, team):
    owner, operator = team.people["owner"], team.people["operator"]
    reply = operator.call(
        "permission_response",
        sessionId=team.command["sessionId"],
        requestId=team.request_id,
        decision="allow",
    )
    assert reply["ok"], reply
    resolved = owner.wait_for("permission_resolved")[0]
    assert (resolved["decision"], resolved["by"]) == ("allow", "carol")
    with app.app_context():
        details = db.session.scalars(db.select(AuditEntry).filter_by(action="permission")).all()
        assert [(entry.user.username, entry.detail.split()[0]) for entry in details] == [("carol", "allow")]


def test_the_sender_of_a_command_is_named_when_it_is_queued(app, team):
    owner, operator = team.people["owner"], team.people["operator"]
    assert owner.call("subscribe", sessionId=team.other_session_id, afterSeq=1)["ok"]
    run = operator.call(
        "execute_command",
        projectId=team.seed.project_id,
        command="say: from carol",
        sessionId=team.other_session_id,
    )
    assert run["ok"], run
    queued = owner.wait_for("command_state", lambda m: m["state"] == "queued")[0]
    assert (queued["text"], queued["by"]) == ("say: from carol", "carol")


PAGES = {
    # path template -> status by person (others: 404)
    "/projects/{project}": {"owner": 200, "operator": 200, "viewer": 200},
    "/api/projects/{project}/sessions": {"owner": 200, "operator": 200, "viewer": 200},
    "/api/sessions/{session}/commands": {"owner": 200, "operator": 200, "viewer": 200},
    "/projects/{project}/audit": {"owner": 200, "operator": 200, "viewer": 403},
    "/projects/{project}/sharing": {"owner": 200, "operator": 403, "viewer": 403},
}


@pytest.mark.parametrize("who", ("owner", "operator", "viewer", "former", "stranger"))
@pytest.mark.parametrize("path", sorted(PAGES))
def test_every_page_and_json_endpoint_answers_by_role(app, team, path, who):
    url = path.format(project=team.seed.project_id, session=team.command["sessionId"])
    assert team.people[who].http.get(url).status_code == PAGES[path].get(who, 404)


def test_only_the_owner_changes_settings_and_sharing(app, team):
    settings = f"/api/projects/{team.seed.project_id}/settings"
    for who, status in (("owner", 200), ("operator", 403), ("viewer", 403), ("stranger", 404)):
        reply = team.people[who].http.post(settings, json={"permissionMode": "plan"})
        assert reply.status_code == status, (who, reply.status_code)
    share = f"/projects/{team.seed.project_id}/sharing/members"
    for who, status in (("operator", 403), ("viewer", 403), ("stranger", 404)):
        reply = team.people[who].http.post(share, data={"username": "sam", "role": "operator"})
        assert reply.status_code == status, (who, reply.status_code)


def test_a_link_opens_its_page_without_login_and_nothing_else(app, team):
    anonymous = app.test_client()
    assert anonymous.get(team.link_path).status_code == 200
    prompts = anonymous.get(team.link_path + "/commands").get_json()
    assert [p["text"] for p in prompts] == ["say: secret"]
    assert anonymous.get(f"/projects/{team.seed.project_id}").status_code == 302  # to the login form
    assert anonymous.get(f"/api/sessions/{team.command['sessionId']}/commands").status_code == 401
    assert anonymous.get("/s/not-a-token").status_code == 404


def test_a_logged_out_cookie_opens_no_socket_and_no_page(app, team, sockets):
    http = team.people["operator"].http
    assert http.post("/logout").status_code == 302
    assert http.get(f"/projects/{team.seed.project_id}").status_code == 302
    stale = Socket(app, "/web", flask_test_client=http)
    assert not stale.connected


def test_the_dashboard_lists_shared_projects_with_role_and_never_the_owners_agents(app, team):
    page = team.people["viewer"].http.get("/").get_data(as_text=True)
    assert 'data-testid="shared-projects"' in page
    assert "viewer" in page and team.seed.project_id in page
    assert team.seed.token not in page
    with app.app_context():
        viewer_id = db.session.scalar(db.select(User.id).filter_by(username="victor"))
        stranger_id = db.session.scalar(db.select(User.id).filter_by(username="sam"))
        assert [s["agentId"] for s in presence.statuses_for(viewer_id)] == [team.seed.agent_id]
        assert presence.statuses_for(stranger_id) == []
