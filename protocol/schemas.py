"""One marshmallow schema per message of the contract.

Unknown fields are rejected, strings and collections are bounded, ids are strings
and sequence numbers are integers (never a numeric string). Schemas are
declarations: two alike in shape are still two messages of the contract.
"""

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from protocol import workspace
from protocol.events import COMMAND_PERMISSION_MODES, ERROR_CODES, PERMISSION_MODES, Events
from protocol.states import COMMAND_STATES

MAX_COMMAND_CHARS = 100_000
MAX_CHUNK_CHARS = 256_000
MAX_ID_CHARS = 64
MAX_PATH_CHARS = 4096
MAX_MESSAGE_CHARS = 2_000
MAX_SEQ = 2**31 - 1
STATUSES = ("streaming", "complete", "error")
SESSION_ACTIVITY_STATES = ("waiting", "running", "idle")


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


def _model(**kwargs):
    """A model name or alias for Claude Code (protocol/workspace.py MODEL_PATTERN)."""
    return fields.String(
        validate=validate.Regexp(workspace.MODEL_PATTERN, error="Not a model name Claude Code takes."),
        **kwargs,
    )


def _workspace_path(**kwargs):
    """A path relative to the project directory ("" for itself); checked further by the rule."""
    return fields.String(validate=validate.Length(max=MAX_PATH_CHARS), **kwargs)


def _attachment_type(media_type):
    if not workspace.is_attachment_type(media_type):
        raise ValidationError("Not an image (png, jpeg, gif, webp) or a text type.")


class Attachment(Schema):
    """A file sent with a command: an image or a text file, base64."""

    class Meta:
        unknown = RAISE

    name = fields.String(
        required=True, validate=validate.Length(min=1, max=workspace.MAX_ATTACHMENT_NAME_CHARS)
    )
    mediaType = fields.String(required=True, validate=_attachment_type)
    data = fields.String(required=True)


class Attachments(fields.List):
    """A command's attachments: more than the contract allows is `too_large`, not invalid.

    Counted and sized (from the base64 length) before any item is validated, so an
    oversized list costs nothing to refuse.
    """

    def __init__(self, **kwargs):
        super().__init__(fields.Nested(Attachment), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list):
            if len(value) > workspace.MAX_ATTACHMENTS:
                raise ProtocolError(
                    "too_large", f"at most {workspace.MAX_ATTACHMENTS} attachments per command"
                )
            size = sum(
                workspace.decoded_size(item["data"])
                for item in value
                if isinstance(item, dict) and isinstance(item.get("data"), str)
            )
            if size > workspace.MAX_ATTACHMENT_BYTES:
                raise ProtocolError(
                    "too_large",
                    f"attachments of {size} bytes; at most {workspace.MAX_ATTACHMENT_BYTES} per command",
                )
        return super()._deserialize(value, attr, data, **kwargs)


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
    model = _model()
    attachments = Attachments()
    permissionMode = fields.String(validate=validate.OneOf(COMMAND_PERMISSION_MODES))


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


class ListFiles(Message):
    EVENT = Events.LIST_FILES
    projectId = _id(required=True)
    path = _workspace_path(required=True)


class ReadFile(Message):
    EVENT = Events.READ_FILE
    projectId = _id(required=True)
    path = _workspace_path(required=True)


class GitChanges(Message):
    EVENT = Events.GIT_CHANGES
    projectId = _id(required=True)


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
    model = _model(allow_none=True)


class AgentCommand(Message):
    EVENT = Events.AGENT_COMMAND
    sessionId = _id(required=True)
    commandId = _id(required=True)
    command = fields.String(required=True, validate=validate.Length(min=1, max=MAX_COMMAND_CHARS))
    options = fields.Nested(CommandOptions, required=True)
    attachments = Attachments()


class WorkspaceRequest(Message):
    """Server -> agent: answer a browser's list_files, read_file or git_changes (in the ack)."""

    EVENT = Events.WORKSPACE_REQUEST
    requestId = _id(required=True)
    projectPath = _text(MAX_PATH_CHARS, required=True)
    op = fields.String(required=True, validate=validate.OneOf(workspace.OPS))
    path = _workspace_path(required=True)


class AgentCancel(Message):
    EVENT = Events.CANCEL_COMMAND
    sessionId = _id(required=True)
    commandId = _id(required=True)


class AgentPermissionResponse(PermissionResponse):
    EVENT = Events.PERMISSION_RESPONSE
    commandId = _id(required=True)


# /web, server -> browser (what protocol/messages.py builds; checked in tests)


class CommandResult(Message):
    EVENT = Events.COMMAND_RESULT
    sessionId = _id(required=True)
    commandId = _id(required=True)
    seq = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=MAX_SEQ))
    response = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    event = fields.Dict(keys=fields.String(), allow_none=True)
    error = fields.Nested(ErrorInfo, allow_none=True)


class AttachmentInfo(Schema):
    """What browsers learn of an attachment; the bytes are at GET /api/commands/<id>/attachments/<index>."""

    class Meta:
        unknown = RAISE

    index = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))
    name = fields.String(required=True)
    mediaType = fields.String(required=True)
    size = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))


class CommandState(Message):
    EVENT = Events.COMMAND_STATE
    sessionId = _id(required=True)
    commandId = _id(required=True)
    state = fields.String(required=True, validate=validate.OneOf(COMMAND_STATES))
    text = fields.String()
    by = fields.String(validate=validate.Length(max=64))
    model = fields.String()
    attachments = fields.List(fields.Nested(AttachmentInfo))
    permissionMode = fields.String(validate=validate.OneOf(COMMAND_PERMISSION_MODES))


class PermissionResolved(Message):
    EVENT = Events.PERMISSION_RESOLVED
    sessionId = _id(required=True)
    requestId = _id(required=True)
    decision = fields.String(required=True, validate=validate.OneOf(("allow", "deny", "expired")))
    by = fields.String(validate=validate.Length(max=64))


class SessionActivity(Message):
    EVENT = Events.SESSION_ACTIVITY
    sessionId = _id(required=True)
    projectId = _id(required=True)
    projectName = fields.String(required=True, validate=validate.Length(max=128))
    agentName = fields.String(required=True, validate=validate.Length(max=64))
    title = fields.String(required=True, validate=validate.Length(max=200))
    state = fields.String(required=True, validate=validate.OneOf(SESSION_ACTIVITY_STATES))
    since = fields.String(validate=validate.Length(max=40))
    toolName = fields.String(validate=validate.Length(max=128))


class AgentStatus(Message):
    EVENT = Events.AGENT_STATUS
    agentId = _id(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    online = StrictBoolean(required=True)
    # Tether's addition: the version the agent reported when it connected (null: none).
    version = fields.String(allow_none=True, validate=validate.Length(max=64))
    # And whether it answers with the scripted demo model (no Anthropic credentials on it).
    demo = StrictBoolean()


# Agent -> server, in the acknowledgement of a workspace_request; the server hands the
# loaded answer to the browser as its acknowledgement. Not messages: no `type`.


class _Answer(Schema):
    class Meta:
        unknown = RAISE

    ok = fields.Boolean(required=True, validate=validate.Equal(True))


class Records(fields.List):
    """A long list of flat records, each checked in plain Python: a listing's 2,000 entries
    through marshmallow cost a tenth of a second of the server's event loop.

    `spec` maps each key to (type, check of the value or None); a record must have exactly
    those keys. `int` means a JSON integer (not a boolean), `str | None` allows null.
    """

    def __init__(self, spec, **kwargs):
        super().__init__(fields.Raw(), **kwargs)
        self.spec = spec

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ValidationError("Not a valid list.")
        for index, record in enumerate(value):
            problem = self._problem(record)
            if problem:
                raise ValidationError({index: [problem]})
        return list(value)

    def _problem(self, record):
        if not isinstance(record, dict) or record.keys() != self.spec.keys():
            return f"A record with exactly {sorted(self.spec)}."
        for key, (kind, check) in self.spec.items():
            value = record[key]
            if isinstance(value, bool) or not isinstance(value, kind) or (check and not check(value)):
                return f"Invalid {key}."
        return None


def _bounded(low, high):
    return lambda value: low <= len(value) <= high


FILE_ENTRY = {
    "name": (str, _bounded(1, MAX_PATH_CHARS)),
    "kind": (str, ("file", "dir", "link").__contains__),
    "size": (int, (0).__le__),
    "modified": (str, _bounded(0, 40)),
}


class ListFilesAnswer(_Answer):
    path = _workspace_path(required=True)
    entries = Records(FILE_ENTRY, required=True)
    truncated = StrictBoolean(required=True)
    total = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))


class ReadFileAnswer(_Answer):
    path = _workspace_path(required=True)
    size = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))
    binary = StrictBoolean(required=True)
    truncated = StrictBoolean(required=True)
    content = fields.String(required=True)


CHANGE_STATUSES = ("modified", "added", "deleted", "untracked", "conflicted")
CHANGED_FILE = {
    "path": (str, _bounded(1, MAX_PATH_CHARS)),
    "status": (str, CHANGE_STATUSES.__contains__),
    "additions": (int | None, None),
    "deletions": (int | None, None),
}


class GitChangesAnswer(_Answer):
    isRepo = StrictBoolean(required=True)
    branch = fields.String(allow_none=True, validate=validate.Length(max=256))
    files = Records(CHANGED_FILE, required=True)
    diff = fields.String()
    truncated = StrictBoolean()


class ErrorAnswer(Schema):
    class Meta:
        unknown = RAISE

    ok = fields.Boolean(required=True, validate=validate.Equal(False))
    error = fields.Nested(ErrorInfo, required=True)


ANSWERS = {"list_files": ListFilesAnswer(), "read_file": ReadFileAnswer(), "git_changes": GitChangesAnswer()}


SCHEMAS = {
    "web": {
        Events.EXECUTE_COMMAND: ExecuteCommand(),
        Events.SUBSCRIBE: Subscribe(),
        Events.UNSUBSCRIBE: Unsubscribe(),
        Events.CANCEL_COMMAND: CancelCommand(),
        Events.PERMISSION_RESPONSE: PermissionResponse(),
        Events.LIST_FILES: ListFiles(),
        Events.READ_FILE: ReadFile(),
        Events.GIT_CHANGES: GitChanges(),
    },
    "server": {
        Events.COMMAND_RESPONSE: CommandResponse(),
        Events.PERMISSION_REQUEST: PermissionRequest(),
        Events.AGENT_HEARTBEAT: AgentHeartbeat(),
    },
    "browser": {
        Events.COMMAND_RESULT: CommandResult(),
        Events.COMMAND_STATE: CommandState(),
        Events.PERMISSION_REQUEST: PermissionRequest(),
        Events.PERMISSION_RESOLVED: PermissionResolved(),
        Events.AGENT_STATUS: AgentStatus(),
        Events.SESSION_ACTIVITY: SessionActivity(),
    },
    "agent": {
        Events.AGENT_COMMAND: AgentCommand(),
        Events.CANCEL_COMMAND: AgentCancel(),
        Events.PERMISSION_RESPONSE: AgentPermissionResponse(),
        Events.WORKSPACE_REQUEST: WorkspaceRequest(),
    },
}


_CHUNK_REQUIRED = {"type", "sessionId", "commandId", "seq", "data", "isComplete"}
_CHUNK_KEYS = _CHUNK_REQUIRED | {"event", "error"}


def _plain_chunk(payload):
    """An agent's chunk, if it is the plain well-formed kind; None sends it to the schema.

    Agents send thousands of chunks a second and a marshmallow load costs tens of
    microseconds each. This check accepts only what CommandResponse accepts (tests
    check that on generated payloads), without an `error`; anything else, valid or
    not, is loaded by the schema, which stays the contract's reference and names
    what is wrong.
    """
    keys = payload.keys()
    if not (_CHUNK_REQUIRED <= keys <= _CHUNK_KEYS) or payload.get("error") is not None:
        return None
    session_id, command_id, seq = payload["sessionId"], payload["commandId"], payload["seq"]
    data, event = payload["data"], payload.get("event")
    plain = (
        payload["type"] == Events.COMMAND_RESPONSE
        and type(session_id) is str
        and 0 < len(session_id) <= MAX_ID_CHARS
        and type(command_id) is str
        and 0 < len(command_id) <= MAX_ID_CHARS
        and type(seq) is int
        and 0 < seq <= MAX_SEQ
        and type(data) is str
        and len(data) <= MAX_CHUNK_CHARS
        and type(payload["isComplete"]) is bool
        and (event is None or (type(event) is dict and all(type(key) is str for key in event)))
    )
    return dict(payload) if plain else None


FAST_CHECKS = {("server", Events.COMMAND_RESPONSE): _plain_chunk}


def load(audience, event, payload):
    """Validate `payload` for `event` as received by `audience` ("web", "server", "browser", "agent").

    Returns the loaded dict; raises ProtocolError("invalid_message") with the fields.
    """
    if not isinstance(payload, dict):
        raise ProtocolError("invalid_message", "the payload must be a JSON object")
    fast_check = FAST_CHECKS.get((audience, event))
    if fast_check is not None and (loaded := fast_check(payload)) is not None:
        return loaded
    try:
        return SCHEMAS[audience][event].load(payload)
    except ValidationError as error:
        raise ProtocolError("invalid_message", f"invalid {event} message", fields=error.messages) from None


def load_answer(op, answer):
    """An agent's answer to a workspace_request for `op`, loaded; ProtocolError("internal") if malformed."""
    if isinstance(answer, dict) and answer.get("ok") is False:
        schema = ErrorAnswer()
    elif isinstance(answer, dict):
        schema = ANSWERS[op]
    else:
        raise ProtocolError("internal", "the agent's answer was not a JSON object")
    try:
        loaded = schema.load(answer)
    except ValidationError as error:
        raise ProtocolError("internal", f"the agent's answer was malformed: {error.messages}"[:500]) from None
    if not loaded["ok"] and loaded["error"]["code"] not in ERROR_CODES:
        loaded["error"]["code"] = "internal"
    return loaded


def ok_reply(**values):
    return {"ok": True, **values}


def error_reply(code, message, fields=None):
    error = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return {"ok": False, "error": error}
