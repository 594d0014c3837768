"""list_files, read_file and git_changes on the server: who may ask, what never reaches the agent, and
that a browser always gets an answer (agent offline, gone mid-request, silent).

In process (Flask-SocketIO's test clients): the agent here is a test socket that
never answers, so these tests see the server's side only; tests/integration/
test_workspace.py runs the real agent.
"""

import threading
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import accounts, db
from app.models import ChatSession, Project
from tests.conftest import PASSWORD, make_seed, make_user
from tests.fuzzing import examples
from tests.sockets import ERROR_CODES, Sockets, app_with, assert_refused

EVENTS = ("list_files", "read_file", "git_changes")


@pytest.fixture
def quick_app(database_url):
    """The app with a short wait for agents: a silent test agent costs a second, not fifteen."""
    with app_with(database_url, WORKSPACE_TIMEOUT=1.0, WORKSPACE_POLL=0.05) as app:
        yield app


@pytest.fixture
def people(quick_app, tmp_path):
    """Alice's project shared with Carol (operator) and Victor (viewer); Sam a stranger; a link."""
    app = quick_app
    seed = make_seed(app, str(tmp_path))
    sockets = Sockets(app)
    owner = sockets.browser(seed)
    with app.app_context():
        for name in ("carol", "victor", "sam"):
            make_user(name)
        project = db.session.get(Project, seed.project_id)
        accounts.share_project(project, "carol", "operator")
        accounts.share_project(project, "victor", "viewer")
        session = ChatSession(project_id=project.id, title="t")
        db.session.add(session)
        db.session.commit()
        _, path = accounts.create_session_link(session, seed.user_id)
    who = {"owner": owner, "link": sockets.link(path.rsplit("/", 1)[1])}
    for role, name in (("operator", "carol"), ("viewer", "victor"), ("stranger", "sam")):
        who[role] = sockets.browser(SimpleNamespace(username=name, password=PASSWORD))
    yield SimpleNamespace(app=app, seed=seed, sockets=sockets, who=who)
    sockets.close()


def ask(socket, event, project_id, path="README.md"):
    fields = {"projectId": project_id} if event == "git_changes" else {"projectId": project_id, "path": path}
    return socket.call(event, **fields)


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize(
    "role, code",
    [
        ("owner", "agent_offline"),  # allowed: the agent is asked (and is offline here)
        ("operator", "agent_offline"),
        ("viewer", "forbidden"),  # follows the sessions, and nothing more
        ("link", "forbidden"),  # its one session, and nothing more
        ("stranger", "not_found"),
    ],
)
def test_only_the_owner_and_operators_may_look_at_files_and_changes(people, event, role, code):
    assert_refused(ask(people.who[role], event, people.seed.project_id), code)


@pytest.mark.parametrize("event", EVENTS)
def test_another_users_project_is_not_found_even_with_its_agent_online(people, tmp_path, event):
    (tmp_path / "bob").mkdir()
    bob = make_seed(people.app, str(tmp_path / "bob"), username="bob", agent_name="bobs")
    bobs_agent = people.sockets.agent(bob.token)
    assert_refused(ask(people.who["owner"], event, bob.project_id), "not_found")
    assert bobs_agent.received("workspace_request") == []


@pytest.mark.parametrize("event", ("list_files", "read_file"))
@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "/", "a\x00b", "\ud800"])
def test_a_path_that_could_leave_the_project_is_refused_before_the_agent_hears_of_it(people, event, path):
    agent = people.sockets.agent(people.seed.token)
    assert_refused(ask(people.who["owner"], event, people.seed.project_id, path), "forbidden")
    assert agent.received("workspace_request") == []


def test_the_agent_is_asked_with_the_projects_directory_and_a_clean_path(people):
    agent = people.sockets.agent(people.seed.token)
    reply = ask(people.who["operator"], "list_files", people.seed.project_id, "./src//app/")
    assert_refused(reply, "internal")  # the test agent never answers
    assert "did not answer within 1 s" in reply["error"]["message"]
    (request,) = agent.received("workspace_request")
    assert request["projectPath"] == people.seed.project_path
    assert (request["op"], request["path"]) == ("list_files", "src/app")


@pytest.mark.parametrize("how", ["disconnects", "is replaced by a newer connection"])
def test_an_agent_that_goes_away_mid_request_is_answered_agent_offline(people, how):
    agent = people.sockets.agent(people.seed.token)
    leave = agent.close if how == "disconnects" else lambda: people.sockets.agent(people.seed.token)
    leaving = threading.Timer(0.3, leave)
    leaving.start()
    try:
        reply = ask(people.who["owner"], "git_changes", people.seed.project_id)
    finally:
        leaving.join()
    assert_refused(reply, "agent_offline")
    assert "went offline" in reply["error"]["message"]


FUZZ = settings(
    max_examples=examples(150), deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.mark.parametrize("event", EVENTS)
def test_fuzzed_workspace_events_are_all_answered_and_bad_paths_never_reach_the_agent(
    people, tmp_path, event
):
    """Random ids and paths from every person: an answer in the contract's shape every time."""
    (tmp_path / "bob").mkdir()
    bob = make_seed(people.app, str(tmp_path / "bob"), username="bob", agent_name="bobs")
    bobs_agent = people.sockets.agent(bob.token)
    project_ids = [people.seed.project_id, bob.project_id, "nope", ""]
    paths = st.one_of(
        st.text(max_size=40),
        st.sampled_from(["..", "../..", "/etc", "a/../../b", "\x00", "\udfff", "~", "." * 300]),
        st.lists(st.sampled_from(["a", "..", ".", "", "/"]), max_size=6).map("/".join),
    )
    payloads = st.fixed_dictionaries(
        {"type": st.just(event), "projectId": st.sampled_from(project_ids)},
        optional={"path": paths, "extra": st.integers()},
    )

    @FUZZ
    @given(
        payload=st.one_of(payloads, st.none(), st.integers(), st.text()),
        role=st.sampled_from(list(people.who)),
    )
    def fuzz(payload, role):
        reply = people.who[role].call(event, payload)
        assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
        assert reply["ok"] is False and reply["error"]["code"] in ERROR_CODES - {"internal"}, reply

    fuzz()
    assert bobs_agent.received("workspace_request") == []
    assert all(socket.connected for socket in people.who.values())
