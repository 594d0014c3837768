"""Faults found by probing from outside, each with the real server, agents and clients.

- a frozen agent's late output still lands after the server gave its command up;
- a heartbeat that crossed a command's dispatch does not end the command;
- the replays a browser asks for never get that (reading) browser cut off.
"""

import signal

import socketio

from app import db
from app.models import Command
from protocol import PROTOCOL_VERSION
from tests.conftest import make_command
from tests.harness import assert_gapless, wait_until
from tests.integration.test_nothing_lost import expected_slow_text


def finals(browser, command_id):
    return [r for r in browser.session_results_of(command_id) if r["status"] != "streaming"]


def states(browser, command_id):
    with browser.cond:
        return [
            p["state"]
            for name, p in browser.events
            if name == "command_state" and p["commandId"] == command_id
        ]


def agent_text(results):
    """The answer's text: everything but the server's own closing result."""
    return "".join(r["response"] for r in results if (r.get("error") or {}).get("code") != "agent_lost")


def test_a_frozen_agents_late_output_lands_and_corrects_the_command(live_with):
    live = live_with(
        TETHER_PING_INTERVAL="1",
        TETHER_PING_TIMEOUT="1",
        TETHER_AGENT_LOST_GRACE="1",
        TETHER_PRESENCE_INTERVAL="0.3",
    )
    seed, (browser,) = live.ready()
    agent = live.latest_agent
    reply = browser.run(seed.project_id, "slow: 80 40")
    command_id = reply["commandId"]
    wait_until(lambda: len(browser.session_results_of(command_id)) >= 3, message="streaming")

    agent.send(signal.SIGSTOP)
    try:
        lost = wait_until(lambda: finals(browser, command_id), timeout=60, message="the command given up")
        assert lost[0]["error"]["code"] == "agent_lost"
    finally:
        agent.send(signal.SIGCONT)

    wait_until(lambda: "done" in states(browser, command_id), timeout=90, message="the late output")
    results = browser.session_results_of(command_id)
    assert [r["status"] for r in results if r["status"] != "streaming"] == ["error", "complete"]
    assert agent_text(results) == expected_slow_text(80)
    assert_gapless(browser.session_results(reply["sessionId"]))
    assert states(browser, command_id)[-1] == "done"
    with live.app.app_context():
        command = db.session.get(Command, command_id)
        assert (command.state, command.error_code) == ("done", None)


class RawAgent:
    """An agent speaking the protocol by hand, to send a heartbeat at a chosen moment."""

    def __init__(self, url, token):
        self.sio = socketio.Client(reconnection=False)
        self.commands = []
        self.sio.on("agent_command", self._command, namespace="/agent")
        auth = {"token": token, "protocolVersion": PROTOCOL_VERSION, "name": "raw"}
        self.sio.connect(url, namespaces=["/agent"], transports=["websocket"], auth=auth, wait_timeout=10)

    def _command(self, payload):
        self.commands.append(payload)
        return {"ok": True}

    def call(self, event, **fields):
        return self.sio.call(event, {"type": event, **fields}, namespace="/agent", timeout=15)

    def close(self):
        self.sio.disconnect()


def test_a_heartbeat_that_crossed_a_dispatch_does_not_end_the_command(live):
    seed = live.seed()
    browser = live.browser(seed)
    agent = RawAgent(live.url, seed.token)
    try:
        browser.agent_online(seed.agent_id)
        reply = browser.run(seed.project_id, "say: hi")
        wait_until(lambda: agent.commands, message="the command at the agent")
        wait_until(lambda: "running" in states(browser, reply["commandId"]), message="running")
        # Built before the agent knew the command, arriving after its acknowledgement:
        assert agent.call("agent_heartbeat", running=[])["ok"]
        ids = {"sessionId": reply["sessionId"], "commandId": reply["commandId"]}
        chunk = {"seq": 1, "data": "hi", "isComplete": False}
        assert agent.call("command_response", **ids, **chunk)["outcome"] == "stored"
        assert agent.call("agent_heartbeat", running=[])["ok"]
        last = {"seq": 2, "data": "", "isComplete": True}
        assert agent.call("command_response", **ids, **last)["outcome"] == "stored"
        final = browser.wait_final(reply["commandId"])
        assert final["status"] == "complete"
        assert browser.text_of(reply["commandId"]) == "hi"
    finally:
        agent.close()


def test_a_reading_browser_asking_for_many_replays_is_never_cut_off(live_with):
    live = live_with(TETHER_MAX_SEND_QUEUE="100")
    seed = live.seed()
    session_id, _ = make_command(live.app, seed, state="done", chunks=250)
    browser = live.browser(seed)
    browser.following[session_id] = 0
    request = {"type": "subscribe", "sessionId": session_id, "afterSeq": 0}
    for _ in range(200):  # most are answered rate_limited; the rest each replay 250 results
        browser.sio.emit("subscribe", request, namespace="/web")

    def subscribed_after_the_replays():
        # Replays to one socket go one at a time: this answer comes after all of theirs.
        return browser.call("subscribe", {"sessionId": session_id, "afterSeq": 249}, timeout=120)["ok"]

    wait_until(subscribed_after_the_replays, timeout=120, message="a subscribe past the rate limit")
    wait_until(lambda: browser.following[session_id] == 250, message="the whole replay")
    assert browser.connects == 1
    assert browser.sio.connected
