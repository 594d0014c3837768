"""Event names, namespaces, error codes and the protocol version."""

PROTOCOL_VERSION = 1

WEB_NAMESPACE = "/web"
AGENT_NAMESPACE = "/agent"


class Events:
    # /web, browser -> server
    EXECUTE_COMMAND = "execute_command"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    CANCEL_COMMAND = "cancel_command"
    PERMISSION_RESPONSE = "permission_response"
    # /web, server -> browser
    COMMAND_RESULT = "command_result"
    PERMISSION_REQUEST = "permission_request"
    AGENT_STATUS = "agent_status"
    # /agent, server -> agent (CANCEL_COMMAND and PERMISSION_RESPONSE too)
    AGENT_COMMAND = "agent_command"
    # /agent, agent -> server (PERMISSION_REQUEST too)
    COMMAND_RESPONSE = "command_response"
    AGENT_HEARTBEAT = "agent_heartbeat"


ERROR_CODES = (
    "invalid_message",
    "unauthorized",
    "forbidden",
    "not_found",
    "agent_offline",
    "session_busy",
    "too_large",
    "rate_limited",
    "internal",
    # Only as a command's final error:
    "interrupted",
    "agent_lost",
    "claude_error",
)
