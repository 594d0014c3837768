"""The contract's workspace part: its bounds, its media types and its rule for paths.

Both sides import this. The server refuses a path that breaks the rule before it
asks the agent; the agent, which trusts no server, applies the same rule again and
then resolves the path on its own disk (agent_client/workspace.py).
"""

import re

# What an agent answers about: list a directory, read a file, the changes against HEAD.
OPS = ("list_files", "read_file", "git_changes")

# read_file's content and git_changes' diff are cut at this many bytes of UTF-8.
MAX_TEXT_BYTES = 1024 * 1024

# execute_command's attachments: at most this many, and this many bytes decoded, together.
MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
MAX_ATTACHMENT_NAME_CHARS = 255
IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
# Besides text/*: the types browsers give common text files.
TEXT_APPLICATION_TYPES = (
    "application/json",
    "application/xml",
    "application/yaml",
    "application/x-yaml",
    "application/toml",
    "application/javascript",
    "application/x-sh",
    "application/sql",
)
_TEXT_TYPE = re.compile(r"^text/[a-z0-9][a-z0-9.+-]{0,80}$")

# One Socket.IO message, either way, on the server's Engine.IO (max_http_buffer_size):
# room for an execute_command with 5 MiB of attachments (base64: 4/3 of it) and for an
# agent's answer holding 1 MiB of text, whose JSON can be several times its UTF-8 size.
MAX_SOCKET_MESSAGE_BYTES = 8 * 1024 * 1024
# The JSON of one execute_command (every other event keeps the 1 MB of MAX_MESSAGE_BYTES).
MAX_COMMAND_MESSAGE_BYTES = 8_000_000
# What an agent keeps its answer's JSON under (below the above, with room for the framing).
MAX_ANSWER_BYTES = 7_000_000

# Model names: what Claude Code takes as --model (an alias such as `sonnet`, a full name,
# a Bedrock or Vertex id). Never starting with "-": it must not read as an option.
MODEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@\[\]-]{0,127}$")


class PathRefused(ValueError):
    """A workspace path that could leave the project directory (answered `forbidden`)."""


def path_parts(path):
    """The components of a workspace path: `""` is the project directory itself (no parts).

    Paths are relative, with `/` separators. Refused: an absolute path, a `..`
    component, a NUL byte, and U+FFFD (the server turns NUL bytes and lone surrogates
    into it before it sees a message; names that are not valid UTF-8 are listed with
    it, so such a name can be listed, not opened). Empty and `.` components are
    dropped. This is the lexical rule only: the agent then resolves symlinks and
    checks where the real path lies.
    """
    if not isinstance(path, str):
        raise PathRefused("a path must be a string")
    if "\x00" in path or "\ufffd" in path:
        raise PathRefused("a path may not hold a NUL byte or an undecodable character")
    if path.startswith("/"):
        raise PathRefused(f"{path!r} is not relative to the project directory")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PathRefused(f"{path!r} leaves the project directory")
    return parts


def is_text_type(media_type):
    return bool(_TEXT_TYPE.match(media_type)) or media_type in TEXT_APPLICATION_TYPES


def is_attachment_type(media_type):
    return media_type in IMAGE_MEDIA_TYPES or is_text_type(media_type)


def decoded_size(data):
    """The number of bytes base64 text `data` decodes to (exact for valid base64)."""
    return len(data) * 3 // 4 - len(data[-2:]) + len(data[-2:].rstrip("="))
