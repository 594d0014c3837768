"""One marshmallow schema per message of the contract.

Unknown fields are rejected, strings and collections are bounded, ids are strings
and sequence numbers are integers (never a numeric string).
"""

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from protocol.events import Events

MAX_COMMAND_CHARS = 100_000
MAX_CHUNK_CHARS = 256_000
MAX_ID_CHARS = 64
MAX_PATH_CHARS = 4096
MAX_MESSAGE_CHARS = 2_000
MAX_SEQ = 2**31 - 1
PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")
STATUSES = ("streaming", "complete", "error")


class ProtocolError(Exception):
    """An inbound message that does not fit the contract."""

    def __init__(self, code, message, fields=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields


def _id(**kwargs):
    return fields.String(validate=validate.Length(min=1, max=MAX_ID_CHARS), **kwargs)


def _seq(**kwargs):
    return fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_SEQ), **kwargs)


def _text(max_chars, **kwargs):
    return fields.String(validate=validate.Length(max=max_chars), **kwargs)


class StrictBoolean(fields.Boolean):
    """JSON true or false only: 1, "yes" and the like are refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class Message(Schema):
    """Base: `type` must equal the event name the message arrived on."""

    class Meta:
        unknown = RAISE

    EVENT = None
    type = fields.String(required=True)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._declared_fields["type"] = fields.String(required=True, validate=validate.Equal(cls.EVENT))


class ErrorInfo(Schema):
    class Meta:
        unknown = RAISE

    code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    message = _text(MAX_MESSAGE_CHARS, required=True)


# /web, browser -> server


class ExecuteCommand(Message):
    EVENT = Events.EXECUTE_COMMAND
    projectId = _id(required=True)
    command = fields.String(required=True, validate=validate.Length(min=1, max=MAX_COMMAND_CHARS))
    workingDirectory = _text(MAX_PATH_CHARS)
    sessionId = _id()
    clientMessageId = _id()


class Subscribe(Message):
    EVENT = Events.SUBSCRIBE
    sessionId = _id(required=True)
    afterSeq = _seq(required=True)


class Unsubscribe(Message):
    EVENT = Events.UNSUBSCRIBE
    sessionId = _id(required=True)


class CancelCommand(Message):
    """Browser form: only the session; the server adds the command when it tells the agent."""

    EVENT = Events.CANCEL_COMMAND
    sessionId = _id(required=True)


class PermissionResponse(Message):
    EVENT = Events.PERMISSION_RESPONSE
    sessionId = _id(required=True)
    requestId = _id(required=True)
    decision = fields.String(required=True, validate=validate.OneOf(("allow", "deny")))
    message = _text(MAX_MESSAGE_CHARS)


# /agent, agent -> server


class CommandResponse(Message):
    EVENT = Events.COMMAND_RESPONSE
    sessionId = _id(required=True)
    commandId = _id(required=True)
    seq = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=MAX_SEQ))
    data = _text(MAX_CHUNK_CHARS, required=True)
    isComplete = StrictBoolean(required=True)
    event = fields.Dict(keys=fields.String(), allow_none=True)
    error = fields.Nested(ErrorInfo, allow_none=True)


class PermissionRequest(Message):
    EVENT = Events.PERMISSION_REQUEST
    sessionId = _id(required=True)
    commandId = _id(required=True)
    requestId = _id(required=True)
    toolName = fields.String(required=True, validate=validate.Length(min=1, max=128))
    input = fields.Dict(keys=fields.String(), required=True)


class AgentHeartbeat(Message):
    EVENT = Events.AGENT_HEARTBEAT
    running = fields.List(_id(), required=True, validate=validate.Length(max=1000))


# /agent, server -> agent


class CommandOptions(Schema):
    class Meta:
        unknown = RAISE

    workingDirectory = _text(MAX_PATH_CHARS, required=True)
    resume = fields.String(allow_none=True, validate=validate.Length(max=MAX_ID_CHARS))
    permissionMode = fields.String(allow_none=True, validate=validate.OneOf(PERMISSION_MODES))
    model = fields.String(allow_none=True, validate=validate.Length(max=128))


class AgentCommand(Message):
    EVENT = Events.AGENT_COMMAND
    sessionId = _id(required=True)
    commandId = _id(required=True)
    command = fields.String(required=True, validate=validate.Length(min=1, max=MAX_COMMAND_CHARS))
    options = fields.Nested(CommandOptions, required=True)


class AgentCancel(Message):
    EVENT = Events.CANCEL_COMMAND
    sessionId = _id(required=True)
    commandId = _id(required=True)


class AgentPermissionResponse(PermissionResponse):
    EVENT = Events.PERMISSION_RESPONSE
    commandId = _id(required=True)


SCHEMAS = {
    "web": {
        Events.EXECUTE_COMMAND: ExecuteCommand(),
        Events.SUBSCRIBE: Subscribe(),
        Events.UNSUBSCRIBE: Unsubscribe(),
        Events.CANCEL_COMMAND: CancelCommand(),
        Events.PERMISSION_RESPONSE: PermissionResponse(),
    },
    "server": {
        Events.COMMAND_RESPONSE: CommandResponse(),
        Events.PERMISSION_REQUEST: PermissionRequest(),
        Events.AGENT_HEARTBEAT: AgentHeartbeat(),
    },
    "agent": {
        Events.AGENT_COMMAND: AgentCommand(),
        Events.CANCEL_COMMAND: AgentCancel(),
        Events.PERMISSION_RESPONSE: AgentPermissionResponse(),
    },
}


def load(audience, event, payload):
    """Validate `payload` for `event` as received by `audience` ("web", "server", "agent").

    Returns the loaded dict; raises ProtocolError("invalid_message") with the fields.
    """
    if not isinstance(payload, dict):
        raise ProtocolError("invalid_message", "the payload must be a JSON object")
    try:
        return SCHEMAS[audience][event].load(payload)
    except ValidationError as error:
        raise ProtocolError("invalid_message", f"invalid {event} message", fields=error.messages) from None


def ok_reply(**values):
    return {"ok": True, **values}


def error_reply(code, message, fields=None):
    error = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return {"ok": False, "error": error}
