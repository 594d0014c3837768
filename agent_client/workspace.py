"""The agent's answers to `workspace_request`: list a directory, read a file, the changes against HEAD.

The server asks on behalf of a browser and waits for the answer in the
acknowledgement. What may be read, and how much, is decided in
agent_client/files.py (paths, listings, files) and agent_client/git_changes.py.

The work runs in a small pool of threads (`Workspace`), never on the thread that
reads the socket and never on a session's Claude Code thread, so a running
command keeps streaming while files are read.
"""

import concurrent.futures
import logging

from agent_client import files, git_changes
from protocol import Events, ProtocolError, error_reply, load

log = logging.getLogger("tether.agent")

WORKERS = 4
ANSWER_TIMEOUT_S = 12.0  # the server gives up after 15 s; answer before it does


class Workspace:
    """Answers workspace requests in a pool of worker threads.

    `answer(payload)` is the Socket.IO handler: it validates, hands the work to
    the pool and waits for it (python-socketio's client runs each incoming event
    in a thread of its own, so waiting here holds up nothing else), and returns
    the answer as the acknowledgement, within `timeout` seconds whatever the disk
    or git does.
    """

    def __init__(
        self,
        roots,
        *,
        workers=WORKERS,
        timeout=ANSWER_TIMEOUT_S,
        git="git",
        git_timeout=git_changes.GIT_TIMEOUT_S,
    ):
        self.roots = list(roots)
        self.timeout = timeout
        self.git = git
        self.git_timeout = git_timeout
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="workspace")

    def answer(self, payload):
        try:
            message = load("agent", Events.WORKSPACE_REQUEST, payload)
        except ProtocolError as error:  # the answer's error carries code and message only
            return error_reply(error.code, f"{error.message}: {error.fields}"[:500])
        try:
            future = self._pool.submit(self.serve, message)
        except RuntimeError:  # the pool is shut down: the agent is stopping
            return error_reply("agent_offline", "the agent is stopping")
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            log.warning("workspace %s %r took longer than %g s", message["op"], message["path"], self.timeout)
            return error_reply("internal", f"the agent could not answer within {self.timeout:g} s")

    def serve(self, message):
        """The answer to one loaded workspace_request (an ok answer or an error reply)."""
        op, path = message["op"], message["path"]
        try:
            project, root = files.project_dir(message["projectPath"], self.roots)
            if op == "list_files":
                answer = files.list_files(project, path)
            elif op == "read_file":
                answer = files.read_file(project, path)
            else:
                answer = git_changes.changes(project, root, git=self.git, timeout=self.git_timeout)
            return files.fit(answer)
        except files.Refused as refusal:
            return error_reply(refusal.code, refusal.message)
        except Exception as error:  # never let a request kill a worker or go unanswered
            log.exception("workspace %s failed", op)
            return error_reply("internal", f"{type(error).__name__}: {error}"[:500])

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
