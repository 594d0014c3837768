"""The wire contract's schemas: what loads, what is refused, and the shape of the replies."""

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    AGENT_NAMESPACE,
    ERROR_CODES,
    PROTOCOL_VERSION,
    SCHEMAS,
    WEB_NAMESPACE,
    Events,
    ProtocolError,
    error_reply,
    load,
    messages,
    ok_reply,
)
from protocol.schemas import MAX_CHUNK_CHARS, MAX_COMMAND_CHARS, _plain_chunk
from tests.fuzzing import examples

# One valid message per (audience, event), with every optional field filled in.
EXAMPLES = {
    ("web", "execute_command"): {
        "type": "execute_command",
        "projectId": "p1",
        "command": "Explain this repository",
        "workingDirectory": "/home/me/app",
        "sessionId": "s1",
        "clientMessageId": "browser-42",
        "model": "claude-sonnet-4-5",
        "attachments": [
            {"name": "screen.png", "mediaType": "image/png", "data": "iVBORw0KGgo="},
            {"name": "notes.md", "mediaType": "text/markdown", "data": "aGk="},
        ],
    },
    ("web", "list_files"): {"type": "list_files", "projectId": "p1", "path": "src/app"},
    ("web", "read_file"): {"type": "read_file", "projectId": "p1", "path": "README.md"},
    ("web", "git_changes"): {"type": "git_changes", "projectId": "p1"},
    ("web", "subscribe"): {"type": "subscribe", "sessionId": "s1", "afterSeq": 0},
    ("web", "unsubscribe"): {"type": "unsubscribe", "sessionId": "s1"},
    ("web", "cancel_command"): {"type": "cancel_command", "sessionId": "s1"},
    ("web", "permission_response"): {
        "type": "permission_response",
        "sessionId": "s1",
        "requestId": "r1",
        "decision": "allow",
        "message": "go ahead",
    },
    ("server", "command_response"): {
        "type": "command_response",
        "sessionId": "s1",
        "commandId": "c1",
        "seq": 1,
        "data": "Hello",
        "isComplete": False,
        "event": {"type": "assistant", "message": {"content": [{"type": "text", "text": "Hello"}]}},
        "error": {"code": "claude_error", "message": "the model failed"},
    },
    ("server", "permission_request"): {
        "type": "permission_request",
        "sessionId": "s1",
        "commandId": "c1",
        "requestId": "r1",
        "toolName": "Bash",
        "input": {"command": "ls -la"},
    },
    ("server", "agent_heartbeat"): {"type": "agent_heartbeat", "running": ["c1", "c2"]},
    ("agent", "agent_command"): {
        "type": "agent_command",
        "sessionId": "s1",
        "commandId": "c1",
        "command": "Explain this repository",
        "options": {
            "workingDirectory": "/home/me/app",
            "resume": "claude-session-1",
            "permissionMode": "acceptEdits",
            "model": "sonnet",
        },
        "attachments": [{"name": "screen.png", "mediaType": "image/png", "data": "iVBORw0KGgo="}],
    },
    ("agent", "workspace_request"): {
        "type": "workspace_request",
        "requestId": "r1",
        "projectPath": "/home/me/app",
        "op": "read_file",
        "path": "src/main.py",
    },
    ("agent", "cancel_command"): {"type": "cancel_command", "sessionId": "s1", "commandId": "c1"},
    ("agent", "permission_response"): {
        "type": "permission_response",
        "sessionId": "s1",
        "commandId": "c1",
        "requestId": "r1",
        "decision": "deny",
        "message": "not that one",
    },
    ("browser", "command_result"): {
        "type": "command_result",
        "sessionId": "s1",
        "commandId": "c1",
        "seq": 3,
        "response": "Hello",
        "status": "error",
        "event": {"type": "result", "subtype": "success"},
        "error": {"code": "claude_error", "message": "the model failed"},
    },
    ("browser", "command_state"): {
        "type": "command_state",
        "sessionId": "s1",
        "commandId": "c1",
        "state": "queued",
        "text": "Explain this repository",
        "by": "alice",
        "model": "sonnet",
        "attachments": [{"index": 0, "name": "screen.png", "mediaType": "image/png", "size": 8}],
    },
    ("browser", "permission_request"): {
        "type": "permission_request",
        "sessionId": "s1",
        "commandId": "c1",
        "requestId": "r1",
        "toolName": "Write",
        "input": {"file_path": "/w/a.txt", "content": "hi"},
    },
    ("browser", "permission_resolved"): {
        "type": "permission_resolved",
        "sessionId": "s1",
        "requestId": "r1",
        "decision": "allow",
        "by": "alice",
    },
    ("browser", "agent_status"): {"type": "agent_status", "agentId": "a1", "name": "laptop", "online": True},
    ("browser", "session_activity"): {
        "type": "session_activity",
        "sessionId": "s1",
        "projectId": "p1",
        "projectName": "api",
        "agentName": "laptop",
        "title": "Fix the tests",
        "state": "running",
        "since": "2026-01-02T03:04:05Z",
    },
}

ALL_SCHEMAS = sorted((audience, event) for audience, events in SCHEMAS.items() for event in events)
REQUIRED_FIELDS = [
    (audience, event, name)
    for audience, event in ALL_SCHEMAS
    for name, field in SCHEMAS[audience][event].fields.items()
    if field.required
]
ID_FIELDS = [
    (audience, event, name)
    for (audience, event), example in EXAMPLES.items()
    for name in example
    if name.endswith("Id")
]
EVENT_NAMES = sorted({event for _, event in ALL_SCHEMAS})


def make_message(audience, event, **changes):
    """A copy of the valid example for `event`, with `changes` applied."""
    message = copy.deepcopy(EXAMPLES[(audience, event)])
    message.update(changes)
    return message


def refusal(audience, event, payload):
    """Load `payload`, expecting it to be refused; returns the ProtocolError."""
    with pytest.raises(ProtocolError) as caught:
        load(audience, event, payload)
    assert caught.value.code == "invalid_message"
    return caught.value


def test_there_is_an_example_for_every_schema():
    assert sorted(EXAMPLES) == ALL_SCHEMAS


@pytest.mark.parametrize(("audience", "event"), ALL_SCHEMAS)
def test_valid_example_loads_unchanged(audience, event):
    message = make_message(audience, event)
    assert load(audience, event, message) == message


@pytest.mark.parametrize(("audience", "event"), ALL_SCHEMAS)
def test_message_with_only_required_fields_loads(audience, event):
    required = {name for a, e, name in REQUIRED_FIELDS if (a, e) == (audience, event)}
    message = {key: value for key, value in make_message(audience, event).items() if key in required}
    assert load(audience, event, message) == message


@pytest.mark.parametrize(("audience", "event"), ALL_SCHEMAS)
def test_unknown_field_is_refused(audience, event):
    error = refusal(audience, event, make_message(audience, event, surprise="extra"))
    assert "surprise" in error.fields


@pytest.mark.parametrize(("audience", "event", "name"), REQUIRED_FIELDS)
def test_missing_required_field_is_refused(audience, event, name):
    message = make_message(audience, event)
    del message[name]
    error = refusal(audience, event, message)
    assert name in error.fields


@pytest.mark.parametrize(("audience", "event"), ALL_SCHEMAS)
def test_type_of_another_event_is_refused(audience, event):
    other = next(name for name in EVENT_NAMES if name != event)
    error = refusal(audience, event, make_message(audience, event, type=other))
    assert "type" in error.fields


@pytest.mark.parametrize(("audience", "event", "name"), ID_FIELDS)
def test_numeric_id_is_refused(audience, event, name):
    error = refusal(audience, event, make_message(audience, event, **{name: 42}))
    assert name in error.fields


@pytest.mark.parametrize(("audience", "event", "name"), ID_FIELDS)
def test_empty_or_over_long_id_is_refused(audience, event, name):
    for value in ("", "x" * 65):
        error = refusal(audience, event, make_message(audience, event, **{name: value}))
        assert name in error.fields


@pytest.mark.parametrize("value", ["1", 1.5, True, None, -1])
def test_after_seq_must_be_a_non_negative_integer(value):
    error = refusal("web", "subscribe", make_message("web", "subscribe", afterSeq=value))
    assert "afterSeq" in error.fields


@pytest.mark.parametrize("value", ["1", 1.0, True, 0, -3, 2**31])
def test_command_response_seq_must_be_a_positive_integer(value):
    error = refusal("server", "command_response", make_message("server", "command_response", seq=value))
    assert "seq" in error.fields


@pytest.mark.parametrize("value", [1, 0, "true", "yes", None])
def test_is_complete_must_be_a_json_boolean(value):
    message = make_message("server", "command_response", isComplete=value)
    error = refusal("server", "command_response", message)
    assert "isComplete" in error.fields


@pytest.mark.parametrize(("audience", "event"), [("web", "execute_command"), ("agent", "agent_command")])
def test_command_over_100_kb_is_refused_and_100_kb_is_accepted(audience, event):
    assert load(audience, event, make_message(audience, event, command="x" * MAX_COMMAND_CHARS))
    error = refusal(audience, event, make_message(audience, event, command="x" * (MAX_COMMAND_CHARS + 1)))
    assert "command" in error.fields


@pytest.mark.parametrize(("audience", "event"), [("web", "execute_command"), ("agent", "agent_command")])
def test_empty_command_is_refused(audience, event):
    error = refusal(audience, event, make_message(audience, event, command=""))
    assert "command" in error.fields


@pytest.mark.parametrize(("audience", "event"), [("web", "execute_command"), ("agent", "agent_command")])
def test_command_must_be_a_string(audience, event):
    error = refusal(audience, event, make_message(audience, event, command=["ls"]))
    assert "command" in error.fields


@pytest.mark.parametrize("audience", ["web", "agent"])
def test_decision_must_be_allow_or_deny(audience):
    message = make_message(audience, "permission_response", decision="maybe")
    error = refusal(audience, "permission_response", message)
    assert "decision" in error.fields


def test_agent_command_options_refuse_unknown_fields_and_need_a_working_directory():
    options = {"workingDirectory": "/x", "dangerous": True}
    error = refusal("agent", "agent_command", make_message("agent", "agent_command", options=options))
    assert "dangerous" in error.fields["options"]
    error = refusal("agent", "agent_command", make_message("agent", "agent_command", options={}))
    assert "workingDirectory" in error.fields["options"]


def test_agent_command_refuses_an_unknown_permission_mode():
    options = {"workingDirectory": "/x", "permissionMode": "yolo"}
    error = refusal("agent", "agent_command", make_message("agent", "agent_command", options=options))
    assert "permissionMode" in error.fields["options"]


def test_command_response_error_must_have_code_and_message_only():
    for bad in ({"code": "claude_error"}, {"code": "x", "message": "y", "stack": "..."}, "boom"):
        message = make_message("server", "command_response", error=bad)
        error = refusal("server", "command_response", message)
        assert "error" in error.fields


def test_heartbeat_running_must_be_a_list_of_string_ids():
    for running in (["c1", 7], "c1", None):
        message = make_message("server", "agent_heartbeat", running=running)
        error = refusal("server", "agent_heartbeat", message)
        assert "running" in error.fields


def test_permission_request_input_must_be_an_object():
    message = make_message("server", "permission_request", input="rm -rf /")
    error = refusal("server", "permission_request", message)
    assert "input" in error.fields


@pytest.mark.parametrize("payload", [None, [], "execute_command", 7])
def test_payload_that_is_not_an_object_is_refused(payload):
    error = refusal("web", "execute_command", payload)
    assert error.fields is None


def test_refusal_lists_every_bad_field_at_once():
    message = {"type": "subscribe", "sessionId": 5, "afterSeq": "1", "extra": True}
    error = refusal("web", "subscribe", message)
    assert set(error.fields) == {"sessionId", "afterSeq", "extra"}


def test_ok_reply_is_ok_true_plus_the_values():
    assert ok_reply() == {"ok": True}
    assert ok_reply(sessionId="s1", commandId="c1") == {"ok": True, "sessionId": "s1", "commandId": "c1"}
    assert ok_reply(lastSeq=0) == {"ok": True, "lastSeq": 0}


def test_error_reply_has_code_and_message_and_no_fields_unless_given():
    assert error_reply("not_found", "no such session") == {
        "ok": False,
        "error": {"code": "not_found", "message": "no such session"},
    }


def test_invalid_message_reply_carries_the_fields_and_is_json():
    error = refusal("server", "agent_heartbeat", make_message("server", "agent_heartbeat", running=[1]))
    reply = json.loads(json.dumps(error_reply(error.code, error.message, error.fields)))
    assert set(reply) == {"ok", "error"}
    assert reply["ok"] is False
    assert set(reply["error"]) == {"code", "message", "fields"}
    assert reply["error"]["code"] == "invalid_message"
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    assert "running" in reply["error"]["fields"]


def test_error_codes_are_those_of_the_contract():
    assert set(ERROR_CODES) == {
        "invalid_message",
        "unauthorized",
        "forbidden",
        "not_found",
        "agent_offline",
        "session_busy",
        "too_large",
        "rate_limited",
        "internal",
        "interrupted",
        "agent_lost",
        "claude_error",
    }


def test_event_names_namespaces_and_version_are_those_of_the_contract():
    assert PROTOCOL_VERSION == 1
    assert (WEB_NAMESPACE, AGENT_NAMESPACE) == ("/web", "/agent")
    names = {value for key, value in vars(Events).items() if key.isupper()}
    assert names == {
        "execute_command",
        "subscribe",
        "unsubscribe",
        "cancel_command",
        "permission_response",
        "command_result",
        "permission_request",
        "agent_status",
        "agent_command",
        "command_response",
        "agent_heartbeat",
        # Tether's additions, documented in docs/protocol.md
        "command_state",
        "permission_resolved",
        "session_activity",
        # The contract's workspace addition
        "list_files",
        "read_file",
        "git_changes",
        "workspace_request",
    }
    assert set(SCHEMAS["web"]) == {
        "execute_command",
        "subscribe",
        "unsubscribe",
        "cancel_command",
        "permission_response",
        "list_files",
        "read_file",
        "git_changes",
    }
    assert set(SCHEMAS["server"]) == {"command_response", "permission_request", "agent_heartbeat"}
    assert set(SCHEMAS["agent"]) == {
        "agent_command",
        "cancel_command",
        "permission_response",
        "workspace_request",
    }


def test_page_copy_of_the_contract_is_generated_from_protocol():
    """static/js/generated/protocol.js must be regenerated when protocol/ changes."""
    from pathlib import Path

    from protocol.js import GENERATED_PATH, module_text

    committed = (Path(__file__).resolve().parent.parent / GENERATED_PATH).read_text()
    assert committed == module_text(), "run: python -m protocol.js > " + GENERATED_PATH


BUILT = {
    ("browser", "command_result"): lambda: messages.command_result("s1", "c1", 1, "hi", "streaming"),
    ("browser", "command_state"): lambda: messages.command_state("s1", "c1", "queued", text="say: hi"),
    ("browser", "permission_request"): lambda: messages.permission_request("s1", "c1", "r1", "Bash", {}),
    ("browser", "permission_resolved"): lambda: messages.permission_resolved("s1", "r1", "allow", by="al"),
    ("browser", "agent_status"): lambda: messages.agent_status("a1", "laptop", True),
    ("browser", "session_activity"): lambda: messages.session_activity(
        "s1", "p1", "api", "laptop", "Fix the tests", "waiting", "2026-01-02T03:04:05Z", "Write"
    ),
    ("agent", "agent_command"): lambda: messages.agent_command("s1", "c1", "hi", {"workingDirectory": "/w"}),
    ("agent", "cancel_command"): lambda: messages.agent_cancel("s1", "c1"),
    ("agent", "permission_response"): lambda: messages.agent_permission_response("s1", "c1", "r1", "deny"),
    ("agent", "workspace_request"): lambda: messages.workspace_request("r1", "/w", "list_files", ""),
}


@pytest.mark.parametrize("audience,event", sorted(BUILT))
def test_every_outbound_message_fits_its_schema(audience, event):
    message = BUILT[(audience, event)]()
    assert message["type"] == event
    assert load(audience, event, message) == message


def test_every_message_the_server_sends_has_a_builder():
    outbound = {(audience, event) for audience in ("browser", "agent") for event in SCHEMAS[audience]}
    assert set(BUILT) == outbound


def test_a_final_result_with_an_error_fits_and_a_bad_state_does_not():
    error = {"code": "agent_lost", "message": "gone"}
    final = messages.command_result("s1", "c1", 2, "", "error", error=error)
    assert load("browser", "command_result", final) == final
    with pytest.raises(ProtocolError):
        load("browser", "command_state", messages.command_state("s1", "c1", "lost"))


# The plain-chunk check (protocol/schemas.py _plain_chunk) answers for the schema on the hot path:
# whatever it accepts, CommandResponse must accept, loaded the same.
_maybe = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=2**31 + 2),
    st.floats(allow_nan=False),
    st.text(max_size=70),
    st.binary(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), st.integers(), max_size=2),
)
_chunks = st.dictionaries(
    st.sampled_from(
        ["type", "sessionId", "commandId", "seq", "data", "isComplete", "event", "error", "extra"]
    ),
    _maybe,
).map(lambda fields: {**make_message("server", Events.COMMAND_RESPONSE, error=None), **fields})


@settings(max_examples=examples(1000), deadline=None)
@given(payload=_chunks)
def test_what_the_plain_chunk_check_accepts_the_schema_loads_the_same(payload):
    fast = _plain_chunk(payload)
    if fast is not None:
        assert fast == SCHEMAS["server"][Events.COMMAND_RESPONSE].load(payload)


def test_plain_chunks_take_the_fast_check_and_the_others_the_schema():
    chunk = make_message("server", Events.COMMAND_RESPONSE)
    del chunk["error"]
    assert _plain_chunk(chunk) == chunk
    assert _plain_chunk({**chunk, "event": {"type": "text"}, "data": "", "isComplete": True}) is not None
    too_long = {"data": "x" * (MAX_CHUNK_CHARS + 1)}
    for refused in (
        {"seq": True},
        {"seq": 0},
        {"sessionId": ""},
        {"data": 1},
        {"event": {1: 2}},
        {"type": "x"},
        too_long,
    ):
        assert _plain_chunk({**chunk, **refused}) is None
        refusal("server", Events.COMMAND_RESPONSE, {**chunk, **refused})
    with_error = {**chunk, "isComplete": True, "error": {"code": "claude_error", "message": "it failed"}}
    assert _plain_chunk(with_error) is None
    assert load("server", Events.COMMAND_RESPONSE, with_error) == with_error
