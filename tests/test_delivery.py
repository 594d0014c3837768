"""Ordered delivery (app/delivery.py), called directly on in-process sockets."""

from app import current_services
from tests.sockets import chunk


def session_with_results(seed, sockets, count):
    """A session whose agent has stored `count` streaming results."""
    agent = sockets.agent(seed.token)
    sender = sockets.browser(seed)
    run = sender.call("execute_command", projectId=seed.project_id, command="say: hi")
    command = {"sessionId": run["sessionId"], "commandId": run["commandId"]}
    for seq in range(1, count + 1):
        assert agent.call("command_response", chunk(command, seq, f"<{seq}>"))["ok"]
    return command, agent


def seqs(browser):
    return [r["seq"] for r in browser.received("command_result")]


def test_subscribe_replays_after_the_cursor_then_goes_live(app, seed, sockets):
    command, agent = session_with_results(seed, sockets, 3)
    reader = sockets.browser(seed)
    delivery = current_services(app).delivery
    with app.app_context():
        assert delivery.subscribe(reader.sid, command["sessionId"], 1) == 3
    assert seqs(reader) == [2, 3]
    assert agent.call("command_response", chunk(command, 4, "<4>"))["ok"]
    reader.wait_for("command_result", lambda r: r["seq"] == 4)
    assert seqs(reader) == [2, 3, 4]


def test_a_live_result_after_a_gap_is_preceded_by_the_missing_ones_from_storage(app, seed, sockets):
    command, _ = session_with_results(seed, sockets, 3)
    reader = sockets.browser(seed)
    delivery = current_services(app).delivery
    sid = reader.sid
    delivery.follow_from(sid, command["sessionId"], 0)
    stored = {"type": "command_result", "sessionId": command["sessionId"], "commandId": command["commandId"]}
    delivery.live({**stored, "seq": 3, "response": "<3>", "status": "streaming"})
    assert seqs(reader) == [1, 2, 3]


def test_a_result_already_sent_is_not_sent_again(app, seed, sockets):
    command, _ = session_with_results(seed, sockets, 2)
    reader = sockets.browser(seed)
    delivery = current_services(app).delivery
    with app.app_context():
        delivery.subscribe(reader.sid, command["sessionId"], 0)
    stored = {"type": "command_result", "sessionId": command["sessionId"], "commandId": command["commandId"]}
    delivery.live({**stored, "seq": 2, "response": "<2>", "status": "streaming"})
    assert seqs(reader) == [1, 2]


def test_a_dropped_socket_is_forgotten(app, seed, sockets):
    command, agent = session_with_results(seed, sockets, 1)
    reader = sockets.browser(seed)
    delivery = current_services(app).delivery
    sid = reader.sid
    delivery.follow_from(sid, command["sessionId"], 1)
    delivery.drop(sid)
    assert agent.call("command_response", chunk(command, 2, "<2>"))["ok"]
    assert seqs(reader) == []
