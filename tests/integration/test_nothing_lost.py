"""Every chunk of every answer arrives once and in order, whatever breaks on the way."""

import os

from app import db
from app.models import Chunk, Command
from tests.harness import assert_gapless, wait_until

LONG_ANSWER = "slow: 120 25"  # about three seconds of streaming


def expected_slow_text(count):
    return " ".join(f"w{i}" for i in range(count))


def stored_text(app, command_id):
    with app.app_context():
        chunks = db.session.scalars(
            db.select(Chunk).filter_by(command_id=command_id).order_by(Chunk.seq)
        ).all()
        db.session.remove()
        return "".join(chunk.response for chunk in chunks), [chunk.seq for chunk in chunks]


def command_state(app, command_id):
    with app.app_context():
        state = db.session.get(Command, command_id).state
        db.session.remove()
        return state


def start_streaming(live, browsers=1):
    seed, clients = live.ready(browsers)
    reply = clients[0].run(seed.project_id, LONG_ANSWER)
    for client in clients[1:]:
        client.follow(reply["sessionId"])
    wait_until(lambda: len(clients[0].session_results(reply["sessionId"])) > 5, message="streaming")
    return seed, clients, reply


def test_the_standin_slow_text_is_what_we_expect(live):
    seed, (browser,), reply = start_streaming(live)
    browser.wait_final(reply["commandId"])
    assert browser.text_of(reply["commandId"]) == expected_slow_text(120)


def test_browser_socket_closed_mid_stream_catches_up_without_gap_or_duplicate(live):
    seed, (browser,), reply = start_streaming(live)
    browser.drop_connection()
    browser.wait_final(reply["commandId"])
    assert browser.connects == 2
    assert browser.text_of(reply["commandId"]) == expected_slow_text(120)
    assert_gapless(browser.session_results(reply["sessionId"]))


def test_server_killed_mid_stream_and_restarted_loses_nothing(live):
    seed, browsers, reply = start_streaming(live, browsers=2)
    live.restart_server(kill=True)
    for browser in browsers:
        # On a busy machine the agent may come back after the grace: its output then reopens the command.
        final = browser.wait_final(reply["commandId"], timeout=90, past_agent_lost=True)
        assert final["status"] == "complete", final
        text = "".join(
            r["response"] for r in browser.session_results_of(reply["commandId"]) if not r.get("error")
        )
        assert text == expected_slow_text(120)
        assert_gapless(browser.session_results(reply["sessionId"]))
        assert browser.connects >= 2
    text, seqs = stored_text(live.app, reply["commandId"])
    assert text == expected_slow_text(120)
    assert seqs == list(range(1, len(seqs) + 1))


def test_agent_killed_mid_run_ends_the_command_with_a_clear_error_and_the_next_works(live):
    seed, (browser,), reply = start_streaming(live)
    agent = live.latest_agent
    agent.kill()
    live.agent(seed)
    final = browser.wait_final(reply["commandId"], timeout=60)
    assert final["status"] == "error"
    assert final["error"]["code"] == "agent_lost"
    assert command_state(live.app, reply["commandId"]) == "failed"
    assert_gapless(browser.session_results(reply["sessionId"]))

    browser.agent_online(seed.agent_id)  # the new agent may still be starting on a busy machine
    follow_up = browser.run(seed.project_id, "say: still here", session_id=reply["sessionId"])
    assert browser.wait_final(follow_up["commandId"])["status"] == "complete"
    assert browser.text_of(follow_up["commandId"]) == "still here"


def test_repeated_client_message_id_runs_the_command_once(live):
    seed, (browser,) = live.ready()
    payload = {"projectId": seed.project_id, "command": "say: once", "clientMessageId": "msg-1"}
    first = browser.call("execute_command", payload)
    again = browser.call("execute_command", payload)  # as if the first ack was lost
    assert first["ok"] and again["ok"]
    assert (again["sessionId"], again["commandId"]) == (first["sessionId"], first["commandId"])
    browser.wait_final(first["commandId"])
    with live.app.app_context():
        assert db.session.scalar(db.select(db.func.count(Command.id))) == 1


def test_unacknowledged_chunks_on_disk_are_sent_by_the_restarted_agent(live):
    seed, (browser,), reply = start_streaming(live)
    agent = live.latest_agent
    live.server.kill()  # nothing is acknowledged from now on: the agent keeps it on disk
    outbox = os.path.join(agent.state_dir, "outbox", f"{reply['commandId']}.jsonl")
    wait_until(lambda: os.path.exists(outbox) and os.path.getsize(outbox) > 0, message="chunks on disk")
    agent.kill()
    live.restart_server(kill=False)
    live.agent(seed)
    final = browser.wait_final(reply["commandId"], timeout=60)
    assert final["error"]["code"] == "agent_lost"
    text, seqs = stored_text(live.app, reply["commandId"])
    assert text and expected_slow_text(120).startswith(text)
    assert seqs == list(range(1, len(seqs) + 1))
