"""git_changes: the project's working tree against HEAD, untracked files included.

git runs with an argument list (never a shell), in a clean environment (none of
the agent's GIT_* variables, no pager, no optional locks so that it never writes
the index, no fsmonitor hook, no external diff, no textconv), with a deadline for
the whole answer: a git that hangs is killed with its process group and the answer
is an error. Every output is read up to a bound, so a huge change costs no more
than the bound.

What is shown is the project directory's part of the repository, with paths
relative to the project directory (as list_files and read_file take them). git
looks for the repository no higher than the agent's --root directory
(GIT_CEILING_DIRECTORIES), so a project inside a root that is not a repository is
not shown the changes of a repository around the root.

Renames are not detected: a renamed file is a deletion and an addition. The
untracked files' content is shown as new-file diffs made here (git would need to
touch the index for them); a symlink's is its target, as git shows it.
"""

import codecs
import contextlib
import os
import signal
import stat
import subprocess
import tempfile
import threading
import time

from agent_client.files import Refused, decode_text, resolve
from protocol.workspace import MAX_TEXT_BYTES

GIT_TIMEOUT_S = 10.0  # for the whole answer
MAX_CHANGED_FILES = 1_000  # files listed in one answer
MAX_LISTING_BYTES = 8 * 1024 * 1024  # of `git status` or `--numstat` output read
# The environment variables git gets from the agent's (everything else is dropped).
KEPT_ENV = ("PATH", "HOME", "USER", "LOGNAME", "XDG_CONFIG_HOME", "TMPDIR", "SYSTEMROOT", "TMP", "TEMP")
CONFLICTS = {"DD", "AU", "UD", "UA", "DU", "AA", "UU"}


class GitError(Exception):
    """git failed or took too long: the answer is `internal` with this message."""


class Git:
    """Runs git in one directory, within one deadline."""

    def __init__(self, directory, ceiling, git="git", timeout=GIT_TIMEOUT_S):
        self.directory = directory
        self.git = git
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.env = {name: os.environ[name] for name in KEPT_ENV if name in os.environ}
        self.env.update(
            GIT_OPTIONAL_LOCKS="0",
            GIT_TERMINAL_PROMPT="0",
            GIT_PAGER="cat",
            PAGER="cat",
            GIT_CEILING_DIRECTORIES=ceiling,
            LC_ALL="C",
        )

    def run(self, *args, limit=64 * 1024, check=True):
        """(exit code, stdout bytes cut at `limit`, whether it was cut); GitError on failure or timeout."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise GitError(f"git did not finish within {self.timeout:g} s")
        command = [self.git, "--no-pager", "-c", "core.fsmonitor=false", "-c", "core.quotePath=false", *args]
        with tempfile.TemporaryFile() as errors:
            try:
                process = subprocess.Popen(
                    command,
                    cwd=self.directory,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    start_new_session=True,  # one process group: a timeout ends git's helpers too
                )
            except OSError as error:
                raise GitError(f"git could not be run: {error}") from None
            expired = threading.Event()
            timer = threading.Timer(remaining, _end, (process, expired))
            timer.start()
            try:
                out = process.stdout.read(limit + 1)
                cut = len(out) > limit
                if cut:
                    _end(process)
                process.stdout.close()
                code = process.wait()
            finally:
                timer.cancel()
            if expired.is_set():
                raise GitError(f"git did not finish within {self.timeout:g} s")
            errors.seek(0)
            said = errors.read(2_000).decode("utf-8", "replace").strip()
        if check and code != 0 and not cut:
            raise GitError(f"git {args[0]} failed: {said or f'exit code {code}'}")
        return code, out[:limit], cut, said


def _end(process, expired=None):
    """Kill git and whatever it started (its process group, where the system has them)."""
    if expired is not None:
        expired.set()
    if hasattr(os, "killpg"):
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        process.kill()


def changes(project, root, git="git", timeout=GIT_TIMEOUT_S):
    """The git_changes answer for real project directory `project` under agent root `root`."""
    runner = Git(project, os.path.dirname(root.rstrip(os.sep)) or os.sep, git, timeout)
    try:
        return _changes(runner, project)
    except GitError as error:
        raise Refused("internal", str(error)) from None


def _changes(git, project):
    code, out, _, said = git.run("rev-parse", "--show-prefix", check=False)
    if code != 0:
        if "not a git repository" in said.lower():
            return {"ok": True, "isRepo": False, "files": []}
        raise GitError(f"git rev-parse failed: {said or f'exit code {code}'}")
    prefix = out.decode("utf-8", "surrogateescape").strip()
    branch = _branch(git)
    base = _base(git)
    _, listing, status_cut, _ = git.run(
        "status", "--porcelain=v1", "-z", "--no-renames", "--untracked-files=all", "--", ".",
        limit=MAX_LISTING_BYTES,
    )  # fmt: skip
    statuses = parse_status(listing, prefix)
    _, numstat, numstat_cut, _ = git.run(
        "diff", base, "--numstat", "-z", "--no-renames", "--relative", "--no-ext-diff", "--no-textconv",
        "--", ".", limit=MAX_LISTING_BYTES,
    )  # fmt: skip
    counts = parse_numstat(numstat)
    _, patch, diff_cut, _ = git.run(
        "diff", base, "--no-ext-diff", "--no-textconv", "--no-color", "--no-renames", "--relative",
        "--src-prefix=a/", "--dst-prefix=b/", "--", ".", limit=MAX_TEXT_BYTES,
    )  # fmt: skip
    diff, _ = cut_text(utf8_text(patch), MAX_TEXT_BYTES)  # invalid bytes became 3-byte U+FFFDs
    budget = MAX_TEXT_BYTES - len(diff.encode())
    files = []
    for path, status in sorted(statuses.items()):
        additions, deletions = counts.get(path, (None, None))
        if status == "untracked":
            new_file, additions, cut = untracked_diff(project, path, budget)
            budget -= len(new_file.encode())
            diff += new_file
            diff_cut = diff_cut or cut
            deletions = 0
        files.append({"path": path, "status": status, "additions": additions, "deletions": deletions})
    cut_files = len(files) > MAX_CHANGED_FILES
    return {
        "ok": True,
        "isRepo": True,
        "branch": branch,
        "files": files[:MAX_CHANGED_FILES],
        "diff": diff,
        "truncated": bool(status_cut or numstat_cut or diff_cut or cut_files),
    }


def _branch(git):
    """The current branch's short name; None when HEAD is detached."""
    code, out, _, _ = git.run("symbolic-ref", "--short", "-q", "HEAD", check=False)
    return (utf8_text(out).strip() or None) if code == 0 else None


def _base(git):
    """HEAD, or the empty tree in a repository without a commit yet."""
    code, _, _, _ = git.run("rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
    if code == 0:
        return "HEAD"
    _, out, _, _ = git.run("hash-object", "-t", "tree", os.devnull)
    return out.decode().strip()


# -- parsing git's output (pure) ------------------------------------------------------------------


def _records(output):
    """NUL-terminated records; the last piece (empty, or partial in an output cut short) is dropped."""
    return output.split(b"\x00")[:-1]


def parse_status(output, prefix=""):
    """`git status --porcelain=v1 -z --no-renames` output -> {path relative to the project: status}.

    Paths in it are relative to the repository's top; `prefix` (the project's place
    in it, `git rev-parse --show-prefix`) is taken off. Entries neither in HEAD nor
    in the working tree (added, then deleted) are left out.
    """
    statuses = {}
    for record in _records(output):
        if len(record) < 4:
            continue
        code, path = record[:2].decode("ascii", "replace"), utf8_text(record[3:])
        if path.startswith(prefix):
            path = path[len(prefix) :]
        status = change_status(code)
        if status and path:
            statuses[path] = status
    return statuses


def change_status(code):
    """The contract's status for porcelain's two-letter code (index, working tree); None to leave out."""
    index, tree = code[0], code[1]
    if code == "??":
        return "untracked"
    if code in CONFLICTS:
        return "conflicted"
    if index == "A":
        return None if tree == "D" else "added"
    if "D" in code:
        return "deleted"
    if code == "!!":
        return None
    return "modified"


def parse_numstat(output):
    """`git diff --numstat -z --no-renames` output -> {path: (additions, deletions)}; binary: (None, None)."""
    counts = {}
    for record in _records(output):
        fields = record.split(b"\t", 2)
        if len(fields) != 3:
            continue
        added, deleted, path = fields
        counts[utf8_text(path)] = (_count(added), _count(deleted))
    return counts


def _count(field):
    return int(field) if field.isdigit() else None


def utf8_text(data):
    """Bytes as text: invalid UTF-8 replaced, a character cut at the end left out."""
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=False)


# -- untracked files as new-file diffs ----------------------------------------------------------------


def untracked_diff(project, path, budget):
    """(new-file diff of untracked `path`, its line count or None, whether the diff was cut).

    The diff is at most `budget` bytes; nothing is read once the budget is spent.
    """
    if budget <= 0:
        return "", None, True
    try:
        real, _ = resolve(project, path, follow_last=False)
        info = os.lstat(real)
        if stat.S_ISLNK(info.st_mode):
            mode, data = "120000", os.fsencode(os.readlink(real))
        elif stat.S_ISREG(info.st_mode):
            mode = "100755" if info.st_mode & 0o111 else "100644"
            with open(real, "rb") as file:  # the last component is no symlink (lstat above)
                data = file.read(min(budget, MAX_TEXT_BYTES) + 1)
        else:
            return "", None, False
    except (Refused, OSError):
        return "", None, False  # gone since git listed it, or not ours to read
    complete = len(data) <= min(budget, MAX_TEXT_BYTES)
    header = f"diff --git a/{path} b/{path}\nnew file mode {mode}\n"
    text, binary = decode_text(data, len(data) if complete else len(data) - 1)
    if binary:
        new_file, cut = cut_text(header + f"Binary files /dev/null and b/{path} differ\n", budget)
        return new_file, None, cut
    if not data:
        return header, 0, False
    lines = text.split("\n")
    ends_in_newline = lines[-1] == ""
    if ends_in_newline:
        lines.pop()
    hunk = "@@ -0,0 +1 @@\n" if len(lines) == 1 else f"@@ -0,0 +1,{len(lines)} @@\n"
    body = "".join(f"+{line}\n" for line in lines)
    if complete and not ends_in_newline:
        body += "\\ No newline at end of file\n"
    new_file, cut = cut_text(header + "--- /dev/null\n" + f"+++ b/{path}\n" + hunk + body, budget)
    return new_file, (len(lines) if complete else None), cut or not complete


def cut_text(text, limit):
    """(`text` cut to at most `limit` bytes of UTF-8, never in half a character; whether it was cut)."""
    data = text.encode()
    return (text, False) if len(data) <= limit else (utf8_text(data[:limit]), True)
