"""Isolation between users, event by event, and between agents.

Alice has an online agent, a running command and a pending tool permission.
Bob, with his own agent, project and browser, tries every event of the contract
against her things: each is refused, changes nothing and shows him nothing.
"""

from dataclasses import dataclass

import pytest

from app import db
from app.models import AuditEntry, Chunk, Command, PermissionRequest
from tests.sockets import Socket, assert_refused, chunk


@dataclass
class Tenant:
    seed: object
    browser: Socket
    agent: Socket


@dataclass
class World:
    alice: Tenant
    bob: Tenant
    command: dict  # alice's running command: {sessionId, commandId}
    request_id: str  # alice's pending permission request


@pytest.fixture
def world(app, seed, other, sockets):
    alice = Tenant(seed, None, sockets.agent(seed.token))
    bob = Tenant(other, None, sockets.agent(other.token))
    alice.browser, bob.browser = sockets.browser(seed), sockets.browser(other)
    run = alice.browser.call("execute_command", projectId=seed.project_id, command="say: alice's secret")
    assert run["ok"], run
    command = {"sessionId": run["sessionId"], "commandId": run["commandId"]}
    assert alice.agent.call("command_response", chunk(command, 1, "first words"))["ok"]
    asked = alice.agent.call(
        "permission_request",
        **command,
        requestId="alice-request-1",
        toolName="Bash",
        input={"command": "cat ~/.ssh/id_ed25519"},
    )
    assert asked["ok"], asked
    alice.browser.wait_for("permission_request")
    for socket in (alice.browser, alice.agent, bob.browser, bob.agent):
        socket.forget()  # each test starts with empty inboxes
    return World(alice, bob, command, "alice-request-1")


def alice_state(app, world):
    """Everything of alice's that bob must not be able to change."""
    with app.app_context():
        command = db.session.get(Command, world.command["commandId"])
        request = db.session.get(PermissionRequest, world.request_id)
        chunks = db.session.scalars(
            db.select(Chunk.seq).filter_by(session_id=world.command["sessionId"]).order_by(Chunk.seq)
        ).all()
        audit = db.session.scalars(
            db.select(AuditEntry.action).filter_by(project_id=world.alice.seed.project_id)
        ).all()
        commands = db.session.scalar(db.select(db.func.count(Command.id)))
        return {
            "command": (command.state, command.last_agent_seq, command.session_id),
            "request": (request.decision, request.decided_by),
            "chunks": chunks,
            "audit": sorted(audit),
            "commands": commands,
        }


def assert_untouched(app, world, before):
    assert alice_state(app, world) == before
    # Alice's agent was told nothing, and bob saw nothing of her session.
    assert world.alice.agent.received() == []
    leaked = [e for e in world.bob.browser.received() if e.get("sessionId") == world.command["sessionId"]]
    assert leaked == []


# -- /web: bob against alice's project, session, command and permission ----------------


def bob_web_attempts(world):
    alice, command = world.alice.seed, world.command
    bob = world.bob.seed
    return {
        "run on her project": (
            "execute_command",
            {"projectId": alice.project_id, "command": "say: hi"},
        ),
        "continue her session in her project": (
            "execute_command",
            {"projectId": alice.project_id, "command": "say: hi", "sessionId": command["sessionId"]},
        ),
        "continue her session from his project": (
            "execute_command",
            {"projectId": bob.project_id, "command": "say: hi", "sessionId": command["sessionId"]},
        ),
        "subscribe to her session": ("subscribe", {"sessionId": command["sessionId"], "afterSeq": 0}),
        "unsubscribe from her session": ("unsubscribe", {"sessionId": command["sessionId"]}),
        "stop her command": ("cancel_command", {"sessionId": command["sessionId"]}),
        "answer her permission": (
            "permission_response",
            {"sessionId": command["sessionId"], "requestId": world.request_id, "decision": "allow"},
        ),
    }


ATTEMPTS = [
    "run on her project",
    "continue her session in her project",
    "continue her session from his project",
    "subscribe to her session",
    "unsubscribe from her session",
    "stop her command",
    "answer her permission",
]


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_a_user_cannot_touch_another_users_project_or_session(app, world, attempt):
    before = alice_state(app, world)
    event, fields = bob_web_attempts(world)[attempt]

    reply = world.bob.browser.call(event, **fields)

    assert_refused(reply, "not_found")
    # Her agent keeps streaming: nothing of it reaches bob, all of it reaches her.
    assert world.alice.agent.call("command_response", chunk(world.command, 2, "more"))["ok"]
    world.alice.browser.wait_for("command_result", lambda r: r["seq"] == 2)
    before["chunks"].append(2)
    before["command"] = (before["command"][0], 2, before["command"][2])
    assert_untouched(app, world, before)


def test_answering_another_users_permission_from_ones_own_session_is_not_found(app, world, sockets):
    bob = world.bob
    own = bob.browser.call("execute_command", projectId=bob.seed.project_id, command="say: mine")
    assert own["ok"], own
    before = alice_state(app, world)

    reply = bob.browser.call(
        "permission_response", sessionId=own["sessionId"], requestId=world.request_id, decision="allow"
    )

    assert_refused(reply, "not_found")
    assert_untouched(app, world, before)


def test_the_owner_can_do_what_the_other_user_cannot(app, world):
    """The control for the refusals above: the same events from alice succeed."""
    alice, command = world.alice, world.command

    assert alice.browser.call("subscribe", sessionId=command["sessionId"], afterSeq=0)["ok"]
    answered = alice.browser.call(
        "permission_response", sessionId=command["sessionId"], requestId=world.request_id, decision="deny"
    )
    assert answered == {"ok": True, "decision": "deny"}
    assert alice.agent.wait_for("permission_response")[0]["decision"] == "deny"
    assert alice.browser.call("cancel_command", sessionId=command["sessionId"])["ok"]
    assert alice.agent.wait_for("cancel_command")[0]["commandId"] == command["commandId"]


def test_a_client_message_id_is_per_user(app, world):
    """Bob reusing alice's clientMessageId gets his own command, not her answer."""
    alice, bob = world.alice, world.bob
    first = alice.browser.call(
        "execute_command", projectId=alice.seed.project_id, command="say: x", clientMessageId="msg-1"
    )
    assert first["ok"], first

    mine = bob.browser.call(
        "execute_command", projectId=bob.seed.project_id, command="say: y", clientMessageId="msg-1"
    )

    assert mine["ok"] and "repeated" not in mine, mine
    assert mine["sessionId"] != first["sessionId"] and mine["commandId"] != first["commandId"]
    theirs = bob.browser.call(
        "execute_command", projectId=alice.seed.project_id, command="say: y", clientMessageId="msg-1"
    )
    assert theirs.get("sessionId") != first["sessionId"]


def test_agent_status_goes_to_the_agents_owner_only(app, seed, other, sockets):
    bob = sockets.browser(other)
    alice = sockets.browser(seed)
    alices_agent = sockets.agent(seed.token)
    alice.wait_for("agent_status", lambda s: s["agentId"] == seed.agent_id and s["online"])
    alices_agent.close()
    alice.wait_for("agent_status", lambda s: s["agentId"] == seed.agent_id and not s["online"])

    seen_by_bob = {status["agentId"] for status in bob.received("agent_status")}
    assert seen_by_bob == {other.agent_id}


@pytest.mark.parametrize(
    "path",
    [
        "/projects/{project}",
        "/projects/{project}/audit",
        "/api/projects/{project}/sessions",
        "/api/sessions/{session}/commands",
        "/api/sessions/{session}/turns",
    ],
)
def test_another_users_pages_and_lists_are_404(app, world, path):
    http = app.test_client()
    http.post("/login", data={"username": world.bob.seed.username, "password": world.bob.seed.password})
    url = path.format(project=world.alice.seed.project_id, session=world.command["sessionId"])

    assert http.get(url).status_code == 404
    dashboard = http.get("/").get_data(as_text=True)
    for secret in (
        world.alice.seed.project_id,
        world.alice.seed.agent_id,
        "alice-project",
        ">laptop<",
        ">laptop:",
    ):
        assert secret not in dashboard
    assert world.bob.seed.agent_id in dashboard  # the control: his own agent is listed


# -- /agent: bob's agent token against alice's commands -----------------------------------


def test_a_forged_command_response_for_another_agents_command_is_refused_and_stored_nowhere(app, world):
    before = alice_state(app, world)

    reply = world.bob.agent.call("command_response", chunk(world.command, 2, "injected", complete=True))

    assert_refused(reply, "forbidden")
    assert_untouched(app, world, before)
    assert world.alice.browser.received("command_result") == []
    # The command was not closed either: alice's own agent goes on with seq 2.
    assert world.alice.agent.call("command_response", chunk(world.command, 2, "real"))["ok"]


@pytest.mark.parametrize("mix", ["her session, his command", "his session, her command"])
def test_a_command_response_mixing_two_agents_ids_is_refused(app, world, sockets, mix):
    bob = world.bob
    own = bob.browser.call("execute_command", projectId=bob.seed.project_id, command="say: mine")
    assert own["ok"], own
    if mix == "her session, his command":
        forged = {"sessionId": world.command["sessionId"], "commandId": own["commandId"]}
    else:
        forged = {"sessionId": own["sessionId"], "commandId": world.command["commandId"]}
    before = alice_state(app, world)

    for agent in (bob.agent, world.alice.agent):
        assert_refused(agent.call("command_response", chunk(forged, 1, "injected")), "forbidden")

    assert alice_state(app, world) == before
    with app.app_context():
        assert db.session.scalar(db.select(Chunk).filter_by(session_id=own["sessionId"])) is None


def test_a_forged_permission_request_for_another_agents_command_is_refused(app, world):
    before = alice_state(app, world)

    reply = world.bob.agent.call(
        "permission_request", **world.command, requestId="forged-1", toolName="Bash", input={"command": "id"}
    )

    assert_refused(reply, "forbidden")
    assert_untouched(app, world, before)
    with app.app_context():
        assert db.session.get(PermissionRequest, "forged-1") is None
    assert world.alice.browser.received("permission_request") == []


def test_reusing_another_agents_request_id_neither_reveals_nor_reshows_it(app, world):
    """Request ids are global keys: bob's agent naming alice's must learn nothing."""
    alice, bob = world.alice, world.bob
    decided = alice.browser.call(
        "permission_response",
        sessionId=world.command["sessionId"],
        requestId=world.request_id,
        decision="allow",
        message="alice's note",
    )
    assert decided["ok"]
    own = bob.browser.call("execute_command", projectId=bob.seed.project_id, command="say: mine")
    alice.browser.forget()

    reply = bob.agent.call(
        "permission_request",
        sessionId=own["sessionId"],
        commandId=own["commandId"],
        requestId=world.request_id,
        toolName="Bash",
        input={"command": "id"},
    )

    assert_refused(reply, "forbidden")
    assert "allow" not in str(reply) and "alice's note" not in str(reply)
    assert alice.browser.received("permission_request") == []
    assert bob.browser.received("permission_request") == []


def test_a_heartbeat_only_concerns_the_agents_own_commands(app, world):
    before = alice_state(app, world)
    assert before["command"][0] == "running"

    assert world.bob.agent.call("agent_heartbeat", running=[])["ok"]

    assert alice_state(app, world) == before


def test_agent_command_goes_only_to_the_projects_agent(app, world):
    world.bob.agent.forget()

    run = world.alice.browser.call("execute_command", projectId=world.alice.seed.project_id, command="say: 2")

    assert run["ok"], run
    assert world.alice.agent.wait_for("agent_command", lambda c: c["commandId"] == run["commandId"])
    assert world.bob.agent.received("agent_command") == []


def test_an_agent_cannot_expire_another_agents_permission_request(app, world):
    bob = world.bob
    own = bob.browser.call("execute_command", projectId=bob.seed.project_id, command="say: mine")
    assert own["ok"], own
    expired = {"type": "permission_expired", "request_id": world.request_id, "reason": "timeout"}

    assert bob.agent.call("command_response", chunk(own, 1, event=expired))["ok"]

    with app.app_context():
        assert db.session.get(PermissionRequest, world.request_id).decision is None
