"""Agent tokens: 256 random bits, stored hashed, revocable and rotatable at once, optionally expiring."""

import base64
import re
import time
from datetime import timedelta

import pytest
import socketio
from sqlalchemy import text

from app import db
from app.accounts import create_agent, find_user
from app.models import Agent, hash_token, utcnow
from protocol import PROTOCOL_VERSION
from tests.harness import WebClient, flask_result, wait_until
from tests.security.live import ScriptedAgent
from tests.sockets import app_with


def test_tokens_carry_256_random_bits_behind_a_recognisable_prefix(app, seed):
    with app.app_context():
        user = find_user(seed.username)
        tokens = [create_agent(user, f"agent-{i}")[1] for i in range(50)] + [seed.token]

    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        assert re.fullmatch(r"tether_[A-Za-z0-9_-]{43}", token)
        assert len(base64.urlsafe_b64decode(token[len("tether_") :] + "=")) == 32


def test_only_the_sha256_of_a_token_is_stored(app, seed):
    with app.app_context():
        agent = db.session.get(Agent, seed.agent_id)
        assert agent.token_hash == hash_token(seed.token) and len(agent.token_hash) == 64
        rows = db.session.execute(text("SELECT * FROM agents")).all()
    assert seed.token not in repr(rows) and seed.token[len("tether_") :] not in repr(rows)


# -- in process: the dashboard and the token watch ------------------------------------------------


@pytest.fixture
def app(database_url):
    """The app with a token watch every 0.2 s (1 s in TestingConfig): its tests wait for it."""
    with app_with(database_url, AUTO_MIGRATE=False, TOKEN_CHECK_INTERVAL=0.2) as app:
        yield app


def logged_in(app, seed):
    http = app.test_client()
    assert http.post("/login", data={"username": seed.username, "password": seed.password}).status_code == 302
    return http


def test_revoking_on_the_dashboard_disconnects_the_agent_at_once(app, seed, sockets):
    agent = sockets.agent(seed.token)
    browser = sockets.browser(seed)
    assert agent.connected

    logged_in(app, seed).post(f"/agents/{seed.agent_id}/revoke")

    assert not agent.connected
    assert not sockets.agent(seed.token).connected  # the token no longer logs in
    reply = browser.call("execute_command", projectId=seed.project_id, command="say: hi")
    assert reply["error"]["code"] == "agent_offline"


def test_rotating_on_the_dashboard_cuts_the_old_token_off_and_the_new_one_works(app, seed, sockets):
    agent = sockets.agent(seed.token)

    page = logged_in(app, seed).post(f"/agents/{seed.agent_id}/rotate").get_data(as_text=True)

    new_token = re.search(r"tether_[A-Za-z0-9_-]{43}", page).group(0)
    assert new_token != seed.token
    assert not agent.connected
    assert not sockets.agent(seed.token).connected
    assert sockets.agent(new_token).connected


@pytest.mark.parametrize("change", ["revoke", "rotate", "expire"])
def test_a_token_changed_by_another_process_is_cut_off_within_the_check_interval(app, seed, sockets, change):
    """The admin command writes the database only; the token watch of this process notices."""
    agent = sockets.agent(seed.token)
    assert agent.connected
    with app.app_context():
        row = db.session.get(Agent, seed.agent_id)
        if change == "revoke":
            row.revoked_at = utcnow()
        elif change == "rotate":
            row.set_token(Agent.issue_token())
        else:
            row.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    changed = time.monotonic()

    wait_until(lambda: not agent.connected, timeout=10, message="the agent to be cut off")

    assert time.monotonic() - changed <= app.config["TOKEN_CHECK_INTERVAL"] + 2
    assert not sockets.agent(seed.token).connected


def test_an_expired_token_is_refused_at_connect(app, seed, sockets):
    with app.app_context():
        user = find_user(seed.username)
        _, token = create_agent(user, "old", expires_at=utcnow() - timedelta(minutes=1))
        _, fresh = create_agent(user, "new", expires_at=utcnow() + timedelta(days=1))

    assert not sockets.agent(token).connected
    assert sockets.agent(fresh).connected


def test_the_watch_leaves_valid_agents_alone(app, seed, other, sockets):
    alice, bob = sockets.agent(seed.token), sockets.agent(other.token)
    with app.app_context():
        db.session.get(Agent, seed.agent_id).revoked_at = utcnow()
        db.session.commit()

    wait_until(lambda: not alice.connected, timeout=10, message="alice's agent to be cut off")
    time.sleep(app.config["TOKEN_CHECK_INTERVAL"] + 0.5)
    assert bob.connected


# -- the real thing: `flask agents revoke|rotate` in its own process, a real server and agent ----------


def agent_login(url, token):
    client = socketio.Client(reconnection=False)
    auth = {"token": token, "protocolVersion": PROTOCOL_VERSION, "name": "probe"}
    try:
        client.connect(url, namespaces=["/agent"], auth=auth, transports=["websocket"], wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        return None
    return client


@pytest.mark.parametrize("command", ["revoke", "rotate"])
def test_the_admin_command_in_another_process_cuts_a_connected_agent_off(
    server, seed, database_url, tmp_path, command
):
    agent = ScriptedAgent(server.url, seed.token)
    browser = WebClient(server.url, seed.username, seed.password).connect()
    browser.agent_online(seed.agent_id)

    last_line = flask_result(
        database_url, tmp_path / "cli", "agents", command, seed.username, seed.agent_name
    )

    browser.agent_online(seed.agent_id, online=False, timeout=10)
    wait_until(lambda: not agent.sio.connected, timeout=5, message="the agent's socket to close")
    reply = browser.call("execute_command", {"projectId": seed.project_id, "command": "say: hi"})
    assert reply["error"]["code"] == "agent_offline"
    assert agent_login(server.url, seed.token) is None
    if command == "rotate":
        fresh = agent_login(server.url, last_line)
        assert fresh is not None
        browser.agent_online(seed.agent_id)
        fresh.disconnect()
    browser.close()


def test_a_revoked_agent_process_exits_and_says_why(live):
    from app import accounts, db
    from app.models import Agent

    seed = live.seed()
    browser = live.browser(seed)
    agent = live.agent(seed)
    browser.agent_online(seed.agent_id)
    with live.app.app_context():
        accounts.revoke_agent(db.session.get(Agent, seed.agent_id))
    code = agent.proc.wait(timeout=30)
    assert code != 0
    assert "token was revoked or rotated" in agent.output()
