"""Keep structured events and tool inputs small enough for one Socket.IO message.

A Write of a large file puts the whole file in the tool's input. The server takes
messages of up to 1 MB and closes the connection on a larger one, after which an
agent would send the same message again after every reconnect. So long strings
are cut before they leave, and the cut says so.
"""

import json

MAX_JSON_CHARS = 200_000
MAX_STRING_CHARS = 16_000


def shrink(value, max_json_chars=MAX_JSON_CHARS, max_string_chars=MAX_STRING_CHARS):
    """`value` itself when its JSON fits; otherwise a copy with long strings cut."""
    if len(json.dumps(value, default=str)) <= max_json_chars:
        return value
    smaller = _cut_strings(value, max_string_chars)
    if len(json.dumps(smaller, default=str)) <= max_json_chars:
        return smaller
    preview = json.dumps(smaller, default=str)[: max_json_chars // 2]
    return {"truncated": True, "preview": preview}


def _cut_strings(value, limit):
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"… [{len(value) - limit} more characters not shown]"
    if isinstance(value, dict):
        return {key: _cut_strings(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut_strings(item, limit) for item in value]
    return value
