"""Files of a project on the agent's machine: where a path leads, a directory's listing, a file's text.

The agent trusts no server here: every path is resolved on this machine and must
lie inside the project directory, itself inside one of the agent's --root
directories, before anything is opened:

- the lexical rule first (protocol/workspace.py `path_parts`): no absolute path,
  no `..`, no NUL byte;
- then the real path (every symlink resolved) must be the project directory or
  lie under it; a symlink that leads out of it is refused like `..`;
- then the file is opened without following a symlink (O_NOFOLLOW) and what was
  opened is checked again: the same file as the one resolved (device and inode)
  and, where /proc says, still under the project directory, so that a swap
  between the check and the open is caught.

Refusals are `forbidden`; what does not exist is `not_found`. Answers are bounded:
a listing keeps MAX_ENTRIES entries, a file's text MAX_TEXT_BYTES, and the whole
answer's JSON stays under MAX_ANSWER_BYTES (the server's largest message).
"""

import codecs
import errno
import json
import os
import stat
from datetime import UTC, datetime

from agent_client.workdirs import WorkdirRefused, confine, within
from protocol.workspace import MAX_ANSWER_BYTES, MAX_TEXT_BYTES, PathRefused, path_parts

MAX_ENTRIES = 2_000  # entries of one listing answered
MAX_SCANNED = 100_000  # entries of one directory looked at (to sort them)
BINARY_SNIFF_BYTES = 8 * 1024  # a NUL byte in these makes a file binary


class Refused(Exception):
    """An answer that is an error: `code` is one of the contract's."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


# -- where: the project directory and paths in it ------------------------------------


def project_dir(project_path, roots):
    """(real project directory, the root it lies under): forbidden outside the roots, not_found if missing."""
    try:
        real, root = confine(project_path, roots)
    except WorkdirRefused as error:
        raise Refused("forbidden", str(error)) from None
    if not os.path.isdir(real):
        raise Refused("not_found", f"the project directory {project_path} does not exist on this machine")
    return real, root


def resolve(project, path, follow_last=True):
    """(real path, its relative path) of a workspace path; Refused when it could leave `project`.

    With `follow_last` False the last component is kept as is (a symlink is then
    the link itself, as git lists it); its directory is still resolved and checked.
    """
    try:
        parts = path_parts(path)
    except PathRefused as error:
        raise Refused("forbidden", str(error)) from None
    relative = "/".join(parts)
    joined = os.path.join(project, *parts)
    try:
        if follow_last or not parts:
            real = os.path.realpath(joined)
        else:
            real = os.path.join(os.path.realpath(os.path.dirname(joined)), parts[-1])
    except (OSError, ValueError) as error:
        raise Refused("forbidden", f"{path!r} cannot be resolved: {error}") from None
    if not within(real, project):
        raise Refused("forbidden", f"{relative!r} leads out of the project directory")
    return real, relative


def _stat(real, relative):
    try:
        return os.stat(real, follow_symlinks=False)
    except OSError as error:
        raise _refusal(error, relative) from None


def _open(real, relative, flags, expected, project):
    """Open `real` without following a symlink; Refused unless it is still the file that was checked."""
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(real, flags)
    except OSError as error:
        raise _refusal(error, relative) from None
    opened = os.fstat(fd)
    where = _where(fd)
    if (opened.st_dev, opened.st_ino) != (expected.st_dev, expected.st_ino) or (
        where is not None and not within(where, project)
    ):
        os.close(fd)
        raise Refused("forbidden", f"{relative!r} changed while it was opened")
    return fd


def _where(fd):
    """The path of an open file, where the system says (Linux's /proc); None elsewhere."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _refusal(error, relative):
    """The answer for an OSError met while looking at `relative`."""
    shown = relative or "the project directory"
    reason = os.strerror(error.errno) if error.errno else str(error)
    if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
        return Refused("not_found", f"{shown}: {reason}")
    if error.errno in (errno.EACCES, errno.EPERM, errno.ELOOP):  # ELOOP: a loop, or a symlink swapped in
        return Refused("forbidden", f"{shown}: {reason}")
    return Refused("internal", f"{shown}: {reason}")


# -- list_files ----------------------------------------------------------------------------


def list_files(project, path):
    """`{ok, path, entries, truncated, total}`: directories first, then files and links, by name."""
    real, relative = resolve(project, path)
    expected = _stat(real, relative)
    if not stat.S_ISDIR(expected.st_mode):
        raise Refused("invalid_message", f"{relative} is not a directory")
    fd = _open(real, relative, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0), expected, project)
    try:
        names, total = _scan(fd)
        entries = [entry for entry in (_entry(fd, is_dir, name) for is_dir, name in names) if entry]
    finally:
        os.close(fd)
    return {
        "ok": True,
        "path": relative,
        "entries": entries,
        "truncated": total > len(names),
        "total": total,
    }


def _scan(fd):
    """The first MAX_ENTRIES (is directory, name) in listing order, and how many there are.

    Looks at MAX_SCANNED entries at most: past that, `total` is a lower bound and
    the order is that of the entries looked at.
    """
    seen = []
    total = 0
    with os.scandir(fd) as entries:
        for entry in entries:
            total += 1
            if total > MAX_SCANNED:
                break
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            seen.append((is_dir, entry.name))
    seen.sort(key=lambda item: (not item[0], item[1].casefold(), item[1]))
    return seen[:MAX_ENTRIES], total


def _entry(fd, is_dir, name):
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None  # gone since it was listed
    if stat.S_ISDIR(info.st_mode):
        kind = "dir"
    elif stat.S_ISLNK(info.st_mode):
        kind = "link"
    else:
        kind = "file"
    return {"name": shown_name(name), "kind": kind, "size": info.st_size, "modified": iso_utc(info.st_mtime)}


def shown_name(name):
    """A file name as text: bytes that are not UTF-8 (kept by Python as surrogates) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def iso_utc(timestamp):
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- read_file -----------------------------------------------------------------------------


def read_file(project, path):
    """`{ok, path, size, binary, truncated, content}`: UTF-8 text cut at MAX_TEXT_BYTES."""
    real, relative = resolve(project, path)
    expected = _stat(real, relative)
    if stat.S_ISDIR(expected.st_mode):
        raise Refused("invalid_message", f"{relative or 'the project directory'} is a directory")
    if not stat.S_ISREG(expected.st_mode):
        raise Refused("forbidden", f"{relative} is not a regular file")
    fd = _open(real, relative, os.O_RDONLY, expected, project)
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_TEXT_BYTES + 1)
    text, binary = decode_text(data, MAX_TEXT_BYTES)
    return {
        "ok": True,
        "path": relative,
        "size": expected.st_size,
        "binary": binary,
        "truncated": not binary and len(data) > MAX_TEXT_BYTES,
        "content": text,
    }


def decode_text(data, limit):
    """(text of at most `limit` bytes of `data`, whether it is binary).

    Binary: a NUL byte in the first BINARY_SNIFF_BYTES, or bytes that are not
    UTF-8 (a character cut at the limit does not count). The text never ends in
    half a character.
    """
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        return "", True
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(data[:limit], final=len(data) <= limit)
    except UnicodeDecodeError:
        return "", True
    return text, False


# -- the answer's size ------------------------------------------------------------------------

# What gives way, in this order, when an answer's JSON would not fit one message.
_SHRINKABLE = ("content", "diff", "entries", "files")


def fit(answer, budget=MAX_ANSWER_BYTES):
    """`answer` cut (and marked `truncated`) until its JSON fits `budget` bytes.

    Text of MAX_TEXT_BYTES fits as it is unless it is mostly characters JSON
    escapes (control characters: six bytes each); a long list of changes with
    long paths likewise. A safety net, not the usual way.
    """
    while len(json.dumps(answer)) > budget:
        key = next((key for key in _SHRINKABLE if answer.get(key)), None)
        if key is None:
            break
        answer[key] = answer[key][: len(answer[key]) // 2]
        answer["truncated"] = True
    return answer
