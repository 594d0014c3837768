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
    # Tether's additions (docs/protocol.md): a command's delivery state, and who
    # answered a permission request.
    COMMAND_STATE = "command_state"
    PERMISSION_RESOLVED = "permission_resolved"
    # To the user:<id> room: a session started or stopped waiting for the user, or running.
    SESSION_ACTIVITY = "session_activity"
    # /web, browser -> server: the project's files and changes, answered by its agent
    # (the contract's "Workspace" addition; protocol/workspace.py).
    LIST_FILES = "list_files"
    READ_FILE = "read_file"
    GIT_CHANGES = "git_changes"
    # /agent, server -> agent (CANCEL_COMMAND and PERMISSION_RESPONSE too)
    AGENT_COMMAND = "agent_command"
    # One of the workspace events above, for the agent to answer in its acknowledgement.
    WORKSPACE_REQUEST = "workspace_request"
    # /agent, agent -> server (PERMISSION_REQUEST too)
    COMMAND_RESPONSE = "command_response"
    AGENT_HEARTBEAT = "agent_heartbeat"


# Permission modes a project or a command may ask Claude Code for. bypassPermissions
# only reaches Claude Code on an agent started with its own flag for it.
PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")
PROJECT_PERMISSION_MODES = ("default", "acceptEdits", "plan")
# What one command may ask for on top of its project's mode: only less (plan: Claude Code
# plans and runs nothing). Anything looser stays the owner's call, made for the project.
COMMAND_PERMISSION_MODES = ("plan",)


def user_room(user_id):
    """Every browser connection of one user."""
    return f"user:{user_id}"


def session_room(session_id):
    """The subscribers of one session."""
    return f"session:{session_id}"


def agent_room(agent_id):
    """The connection of one agent."""
    return f"agent:{agent_id}"


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
