"""Random and malformed messages to every event of both namespaces.

Every message is answered in the contract's shape; one the schema refuses is
answered with an error; none is answered `internal` or lets an exception out of
its handler; the sender stays connected; and afterwards a normal command still
runs end to end. In process for the many examples, then through a real server
with raw Socket.IO packets, which the in-process client cannot send.
"""

import json
import logging
import re

import pytest
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import ProtocolError, load
from tests.conftest import make_seed
from tests.fuzzing import examples
from tests.harness import WebClient
from tests.security.live import RawSocket, ScriptedAgent
from tests.sockets import ERROR_CODES, Sockets, app_with, chunk

WEB_EVENTS = ("execute_command", "subscribe", "unsubscribe", "cancel_command", "permission_response")
AGENT_EVENTS = ("command_response", "permission_request", "agent_heartbeat")
FUZZ = settings(
    max_examples=examples(150),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text with what breaks storage: NUL, lone surrogates, astral characters.
awkward_text = st.text(
    alphabet=st.one_of(st.characters(), st.sampled_from("\x00\ud800\udfff\U0001f600\u202e")), max_size=80
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    awkward_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(awkward_text, inner, max_size=4),
    max_leaves=12,
)


class ErrorLog(logging.Handler):
    """Collects what the relay logs as an error: a handler that failed."""

    NAMES = ("tether.sockets", "tether.relay", "tether.storage", "tether.delivery")

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        for name in self.NAMES:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc):
        for name in self.NAMES:
            logging.getLogger(name).removeHandler(self)


class Arena:
    """Alice with her agent online and a running command; Bob with his; sockets for all."""

    def __init__(self, app, tmp_path):
        self.app = app
        (tmp_path / "bob").mkdir()
        self.alice = make_seed(app, str(tmp_path))
        self.bob = make_seed(app, str(tmp_path / "bob"), username="bob", agent_name="bobs")
        self.sockets = Sockets(app)
        self.alice_agent = self.sockets.agent(self.alice.token)
        self.bob_agent = self.sockets.agent(self.bob.token)
        self.browser = self.sockets.browser(self.alice)
        run = self.browser.call("execute_command", projectId=self.alice.project_id, command="say: hi")
        assert run["ok"], run
        self.command = {"sessionId": run["sessionId"], "commandId": run["commandId"]}
        bob_run = self.sockets.browser(self.bob).call(
            "execute_command", projectId=self.bob.project_id, command="say: hi"
        )
        self.bob_command = {"sessionId": bob_run["sessionId"], "commandId": bob_run["commandId"]}
        self.ids = [
            self.alice.project_id,
            self.bob.project_id,
            *self.command.values(),
            *self.bob_command.values(),
            "req-1",
        ]

    def check(self, socket, audience, event, payload, reply):
        """The reply fits the contract and the schema's verdict; the socket is still there."""
        assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
        if not reply["ok"]:
            error = reply["error"]
            assert error["code"] in ERROR_CODES - {"internal"}, reply
            assert isinstance(error["message"], str) and error["message"]
        try:
            load(audience, event, payload)
        except ProtocolError:
            assert reply["ok"] is False, (payload, reply)
        except Exception:  # not even loadable (bytes, a list...): must be refused
            assert reply["ok"] is False, (payload, reply)
        assert socket.connected


@pytest.fixture
def arena(database_url, tmp_path):
    settings = {
        "RATE_LIMIT_BURST": 10**9,
        "RATE_LIMIT_PER_SECOND": 10.0**9,
        "MAX_RUNNING_PER_USER": 10**9,
        "MAX_RUNNING_PER_AGENT": 10**9,
    }
    with app_with(database_url, **settings) as app:
        arena = Arena(app, tmp_path)
        yield arena
        arena.sockets.close()


def ids(arena):
    return st.one_of(st.sampled_from(arena.ids), awkward_text, st.text(min_size=1, max_size=64))


def shaped(arena, event):
    """Messages of the right shape (mostly), with real and random values, to reach the relay."""
    any_id = ids(arena)
    seq = st.integers(min_value=-2, max_value=2**31 + 2)
    fields = {
        "execute_command": {
            "projectId": any_id,
            "command": awkward_text,
            "workingDirectory": st.one_of(awkward_text, st.sampled_from(["/", "/etc", "~", "../.."])),
            "sessionId": any_id,
            "clientMessageId": any_id,
        },
        "subscribe": {"sessionId": any_id, "afterSeq": seq},
        "unsubscribe": {"sessionId": any_id},
        "cancel_command": {"sessionId": any_id},
        "permission_response": {
            "sessionId": any_id,
            "requestId": any_id,
            "decision": st.sampled_from(["allow", "deny", "ALLOW", ""]),
            "message": awkward_text,
        },
        "command_response": {
            "sessionId": any_id,
            "commandId": any_id,
            "seq": seq,
            "data": awkward_text,
            "isComplete": st.booleans(),
            "event": st.one_of(st.none(), st.dictionaries(awkward_text, json_values, max_size=3)),
            "error": st.one_of(
                st.none(), st.fixed_dictionaries({"code": awkward_text, "message": awkward_text})
            ),
        },
        "permission_request": {
            "sessionId": any_id,
            "commandId": any_id,
            "requestId": any_id,
            "toolName": awkward_text,
            "input": st.dictionaries(awkward_text, json_values, max_size=3),
        },
        "agent_heartbeat": {"running": st.lists(any_id, max_size=5)},
    }[event]
    complete = st.fixed_dictionaries({"type": st.just(event), **fields})
    partial = st.fixed_dictionaries({"type": st.just(event)}, optional=fields)
    extra = st.dictionaries(
        st.sampled_from(["extra", "TYPE", "__proto__"]), json_values, min_size=1, max_size=1
    )
    with_extra = st.tuples(complete, extra).map(lambda parts: {**parts[0], **parts[1]})
    # Mostly complete messages, which reach the relay and the database.
    return st.one_of(complete, complete, complete, partial, with_extra)


def malformed_json(event):
    """Any JSON at all: other types, a wrong or the right `type` with junk around it."""
    return st.one_of(
        json_values,
        st.dictionaries(awkward_text, json_values, max_size=5),
        st.dictionaries(awkward_text, json_values, max_size=5).map(lambda d: {**d, "type": event}),
    )


def malformed(event):
    """Any JSON, or binary (a Socket.IO binary event)."""
    return st.one_of(malformed_json(event), st.binary(max_size=64))


def assert_no_handler_failed(errors):
    assert errors.records == [], [r.getMessage() for r in errors.records]


@pytest.mark.parametrize("event", WEB_EVENTS)
def test_fuzzed_web_events_are_all_answered(arena, event):
    with ErrorLog() as errors:

        @FUZZ
        @given(payload=st.one_of(shaped(arena, event), malformed(event)))
        def fuzz(payload):
            reply = arena.browser.call(event, payload)
            arena.check(arena.browser, "web", event, payload, reply)

        fuzz()
    assert_no_handler_failed(errors)


def finish_the_commands(arena):
    """A chunk ahead of a running command's next seq waits up to STORE_TIMEOUT (15 s) for the
    ones before it, then is refused to be sent again (tests/test_storage.py): a fuzzed seq that
    hits a running command would make each such example wait that long. Finished commands
    answer every chunk at once, after the same validation, ownership check and storage."""
    for agent, command in ((arena.alice_agent, arena.command), (arena.bob_agent, arena.bob_command)):
        assert agent.call("command_response", **command, seq=1, data="done", isComplete=True)["ok"]


@pytest.mark.parametrize("event", AGENT_EVENTS)
@pytest.mark.parametrize("who", ["own agent", "other agent"])
def test_fuzzed_agent_events_are_all_answered(arena, event, who):
    agent = arena.alice_agent if who == "own agent" else arena.bob_agent
    if event == "command_response":
        finish_the_commands(arena)
    with ErrorLog() as errors:

        @FUZZ
        @given(payload=st.one_of(shaped(arena, event), malformed(event)))
        def fuzz(payload):
            reply = agent.call(event, payload)
            arena.check(agent, "server", event, payload, reply)

        fuzz()
    assert_no_handler_failed(errors)


@pytest.mark.parametrize("namespace", ["web", "agent"])
def test_fuzzed_event_names_and_arities_are_answered(arena, namespace):
    socket = arena.browser if namespace == "web" else arena.alice_agent
    with ErrorLog() as errors:

        @FUZZ
        @given(
            event=st.one_of(st.sampled_from(["connect", "disconnect", "state", "on_connect"]), awkward_text),
            args=st.lists(json_values, max_size=3),
        )
        def fuzz(event, args):
            reply = socket.emit_raw(event, *args)
            assert isinstance(reply, dict) and reply["ok"] is False, (event, reply)
            assert reply["error"]["code"] != "internal", reply
            assert socket.connected

        fuzz()
    assert_no_handler_failed(errors)


def test_after_the_fuzz_a_normal_command_still_runs_end_to_end(arena):
    """Reuses one arena for a fuzz round of every event, then a command goes through."""
    web = st.sampled_from(WEB_EVENTS).flatmap(lambda e: st.tuples(st.just(e), malformed(e)))
    agent = st.sampled_from(AGENT_EVENTS).flatmap(lambda e: st.tuples(st.just(e), shaped(arena, e)))

    @settings(FUZZ, max_examples=examples(100))
    @given(web=web, agent=agent)
    def fuzz(web, agent):
        arena.browser.call(*web)
        arena.alice_agent.call(*agent)

    fuzz()
    assert arena.browser.connected and arena.alice_agent.connected
    arena.alice_agent.forget()
    run = arena.browser.call("execute_command", projectId=arena.alice.project_id, command="say: still here")
    assert run["ok"], run
    sent = arena.alice_agent.wait_for("agent_command", lambda c: c["commandId"] == run["commandId"])[0]
    assert sent["command"] == "say: still here"
    assert arena.alice_agent.call("command_response", chunk(run, 1, "still here", complete=True))["ok"]
    final = arena.browser.wait_for("command_result", lambda r: r["commandId"] == run["commandId"])[0]
    assert (final["response"], final["status"]) == ("still here", "complete")


# -- through a real server: raw packets the in-process client cannot send ---------------------------

GARBAGE_PACKETS = [
    "",
    "4",
    "42",
    "42/web,",
    "42/web,[",
    "42/web,{}",
    '42/web,["execute_command"',
    '42/web,900["subscribe",{"type":"subscribe","sessionId":"x","afterSeq":NaN}]',
    "42/web,1" + "[" * 5000 + "]" * 5000,
    '42/nowhere,["subscribe",{}]',
    '43/web,99["ack for nothing"]',
    '451-/web,["subscribe",{"_placeholder":true,"num":0}]',
    "40/agent,{}",
    "9",
    "\x00\x01\x02",
    r'42/web,901["subscribe",{"type":"subscribe","sessionId":"\ud800\u0000","afterSeq":0}]',
]


def test_raw_garbage_packets_do_not_take_the_server_down(server, seed):
    agent = ScriptedAgent(server.url, seed.token)
    bystander = WebClient(server.url, seed.username, seed.password).connect()
    bystander.agent_online(seed.agent_id)

    for garbage in GARBAGE_PACKETS:
        raw = RawSocket(server.url, WebClient(server.url, seed.username, seed.password).http)
        raw.join("/web")
        raw.ws.settimeout(2)  # some garbage is answered with silence
        try:
            raw.ws.send(garbage)
            # The connection may be dropped for a broken packet; a well-formed call after it
            # on the same socket, if it is still open, is still answered.
            reply = raw.call("/web", "subscribe", {"type": "subscribe", "sessionId": "nope", "afterSeq": 0})
            assert reply["error"]["code"] == "not_found", (garbage, reply)
        except (websocket.WebSocketException, OSError):
            pass  # the server dropping a connection that sent garbage is an acceptable answer
        finally:
            raw.close()

    run = bystander.run(seed.project_id, "say: still serving")
    command = {"sessionId": run["sessionId"], "commandId": run["commandId"]}
    assert agent.next_command()["commandId"] == run["commandId"]
    agent.stream(command, 3, size=10)
    assert bystander.wait_final(run["commandId"])["status"] == "complete"
    # python-engineio and python-socketio log their own decoding failures for some of these
    # (an empty packet, an event without data) and go on; no Tether handler failed.
    assert not re.search(r"(ERROR|CRITICAL) +\[tether\.", server.output()), server.output()[-3000:]
    agent.close()
    bystander.close()


@pytest.mark.parametrize("event", WEB_EVENTS)
def test_fuzzed_web_events_through_a_real_server(server, seed, event):
    raw = RawSocket(server.url, WebClient(server.url, seed.username, seed.password).http)
    raw.join("/web")

    @settings(FUZZ, max_examples=examples(40))
    @given(payload=st.one_of(malformed_json(event), st.just({"type": event})))
    def fuzz(payload):
        reply = raw.call("/web", event, json.loads(json.dumps(payload)))
        assert reply["ok"] is False and reply["error"]["code"] in ERROR_CODES - {"internal"}, reply

    try:
        fuzz()
    finally:
        raw.close()
