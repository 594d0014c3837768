"""The relay's decisions, called directly with in-process sockets: no server process."""

import time

from app import commands, current_services, db, relay
from app.models import Command
from tests.sockets import chunk


def started_command(seed, sockets, text="say: hi"):
    """A command alice ran, which her agent has begun to answer (so it is `running`)."""
    agent = sockets.agent(seed.token)
    browser = sockets.browser(seed)
    run = browser.call("execute_command", projectId=seed.project_id, command=text)
    assert run["ok"], run
    command = {"sessionId": run["sessionId"], "commandId": run["commandId"]}
    assert agent.call("command_response", chunk(command, 1, "first"))["ok"]
    return command, agent, browser


def state_of(app, command_id):
    with app.app_context():
        command = db.session.get(Command, command_id)
        return command.state, command.error_code


def test_a_command_is_announced_queued_then_sent_to_its_agent(app, seed, sockets):
    command, agent, browser = started_command(seed, sockets)
    states = [m["state"] for m in browser.received("command_state") if m["commandId"] == command["commandId"]]
    assert states[:3] == ["queued", "sent", "running"]
    [sent] = agent.received("agent_command")
    assert (sent["commandId"], sent["command"]) == (command["commandId"], "say: hi")


def test_one_heartbeat_without_a_command_does_not_end_it(app, seed, sockets):
    """A heartbeat may have crossed the command's dispatch or its last result on the way."""
    command, _, _ = started_command(seed, sockets)
    app.config["HEARTBEAT_GRACE"] = 60
    missing_since = {}
    with app.test_request_context():
        for _ in range(3):
            assert relay.heartbeat(seed.agent_id, {"running": []}, missing_since)["ok"]
    assert state_of(app, command["commandId"]) == ("running", None)
    assert set(missing_since) == {command["commandId"]}


def test_a_command_reported_again_is_no_longer_suspect(app, seed, sockets):
    command, _, _ = started_command(seed, sockets)
    missing_since = {}
    with app.test_request_context():
        relay.heartbeat(seed.agent_id, {"running": []}, missing_since)
        relay.heartbeat(seed.agent_id, {"running": [command["commandId"]]}, missing_since)
    assert missing_since == {}


def test_a_command_missing_for_the_whole_grace_is_given_up_as_agent_lost(app, seed, sockets):
    command, _, browser = started_command(seed, sockets)
    app.config["HEARTBEAT_GRACE"] = 0.2
    missing_since = {}
    with app.test_request_context():
        relay.heartbeat(seed.agent_id, {"running": []}, missing_since)
        time.sleep(0.25)
        relay.heartbeat(seed.agent_id, {"running": []}, missing_since)
    final = browser.wait_for("command_result", lambda r: r["status"] == "error")
    assert final[0]["error"]["code"] == "agent_lost"
    assert state_of(app, command["commandId"]) == ("failed", "agent_lost")


def test_late_output_reopens_a_lost_command_and_every_subscriber_is_told(app, seed, sockets):
    command, agent, browser = started_command(seed, sockets)
    with app.app_context():
        from app.storage import close_command

        close_command(command["commandId"], "agent_lost", "gone")
    browser.wait_for("command_state", lambda m: m["state"] == "failed")
    assert agent.call("command_response", chunk(command, 2, " and the rest"))["ok"]
    assert agent.call("command_response", chunk(command, 3, "", complete=True))["ok"]
    states = [m["state"] for m in browser.wait_for("command_state", lambda m: m["state"] == "done")]
    assert states == ["done"]
    moves = [m["state"] for m in browser.received("command_state")]
    assert moves[-3:] == ["failed", "running", "done"]
    text = "".join(r["response"] for r in sorted(browser.received("command_result"), key=lambda r: r["seq"]))
    assert text == "first and the rest"
    assert state_of(app, command["commandId"]) == ("done", None)


def test_a_finished_command_never_moves_back(app, seed, sockets):
    command, agent, _ = started_command(seed, sockets)
    assert agent.call("command_response", chunk(command, 2, "", complete=True))["ok"]
    with app.app_context():
        row = db.session.get(Command, command["commandId"])
        assert not commands.move(row, "running")
        assert not commands.move(row, "failed")
        assert row.state == "done"


def test_the_access_watch_keeps_the_follow_of_a_session_still_being_created(app, seed, sockets):
    """execute_command follows its new session before the commit that creates it. The access
    watch, running in between (on PostgreSQL under gevent its queries let other tasks run), took
    that follow away: the sender then got nothing of its command (seen on CI)."""
    browser = sockets.browser(seed)
    delivery = current_services(app).delivery
    with app.app_context():
        delivery.follow_from(browser.sid, "created-by-a-commit-under-way", 0)
        current_services(app).web_namespace.cut_off_lost_access()
    assert (browser.sid, "created-by-a-commit-under-way") in delivery.follows()
