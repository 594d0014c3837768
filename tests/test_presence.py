"""Presence (app/presence.py), called directly: agents whose process went quiet, lost commands."""

from datetime import timedelta

from app import db, presence
from app.models import Agent, Command, utcnow
from tests.sockets import chunk


def test_an_agent_whose_server_process_went_quiet_is_marked_offline_and_its_owner_told(app, seed, sockets):
    browser = sockets.browser(seed)
    browser.forget()
    with app.app_context():
        agent = db.session.get(Agent, seed.agent_id)
        agent.sid, agent.server_id = "gone-socket", "a-process-that-died"
        agent.seen_at = utcnow() - timedelta(seconds=app.config["PRESENCE_TIMEOUT"] + 1)
        db.session.commit()
        presence.sweep(app)  # (the scheduler's own sweep may come first: either tells once)
        assert not db.session.get(Agent, seed.agent_id).online
    [status] = browser.received("agent_status")
    assert (status["agentId"], status["online"]) == (seed.agent_id, False)


def test_an_agent_of_this_process_is_kept_fresh(app, seed, sockets):
    sockets.agent(seed.token)
    with app.app_context():
        agent = db.session.get(Agent, seed.agent_id)
        agent.seen_at = utcnow() - timedelta(seconds=app.config["PRESENCE_TIMEOUT"] + 1)
        db.session.commit()
        presence.sweep(app)
        db.session.expire_all()
        agent = db.session.get(Agent, seed.agent_id)
        assert agent.online
        assert agent.seen_at > utcnow() - timedelta(seconds=5)


def test_commands_of_an_agent_away_longer_than_the_grace_end_agent_lost(app, seed, sockets):
    agent = sockets.agent(seed.token)
    browser = sockets.browser(seed)
    run = browser.call("execute_command", projectId=seed.project_id, command="say: hi")
    command = {"sessionId": run["sessionId"], "commandId": run["commandId"]}
    assert agent.call("command_response", chunk(command, 1, "first"))["ok"]
    agent.close()
    with app.app_context():
        away = db.session.get(Agent, seed.agent_id)
        assert not away.online
        away.disconnected_at = utcnow() - timedelta(seconds=app.config["AGENT_LOST_GRACE"] + 1)
        db.session.commit()
        presence.sweep(app)
    final = browser.wait_for("command_result", lambda r: r["status"] == "error")
    assert final[0]["error"]["code"] == "agent_lost"
    with app.app_context():
        assert db.session.get(Command, command["commandId"]).state == "failed"


def test_statuses_for_a_user_list_only_that_users_agents(app, seed, other):
    with app.app_context():
        statuses = presence.statuses_for(seed.user_id)
    assert [(s["agentId"], s["online"]) for s in statuses] == [(seed.agent_id, False)]
