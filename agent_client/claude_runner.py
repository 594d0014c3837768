"""Run Claude Code for Tether sessions through the official Agent SDK.

The agent's Socket.IO client is synchronous, the SDK is asyncio. Each Tether
session therefore gets one worker thread running its own event loop, and that
loop keeps ONE live ``ClaudeSDKClient`` between turns, so a follow-up prompt
costs tens of milliseconds instead of a CLI start-up. A client left idle for
``idle_timeout`` seconds is closed and its thread ends; the next prompt starts
a new client that resumes the same Claude Code session. At most
``max_warm_sessions`` clients are kept: starting one more first closes the
least recently used idle one the same way (never one that runs a turn or waits
on a permission).

Claude Code is started through ``agent_client.launcher``, so it ends when the
agent does, however the agent ends. The SDK reads each of its JSON messages
whole; ``max_message_bytes`` bounds one (a long answer, a large file written).

Calls come in from other threads (``run``, ``cancel``, ``answer_permission``)
and are handed to the session's loop with ``call_soon_threadsafe``. Results go
out through a ``Sink`` that the socket client implements; the sink is called
from the worker threads and gets exactly one ``finish`` per command.

Events passed to ``Sink.event`` (JSON-serialisable, close to Claude Code's own
stream-json)::

    {"type": "system", "subtype": "init", "session_id", "cwd", "model", "tools",
     "permissionMode", "slash_commands", "commands", "models"}
    {"type": "system", "subtype": "resume_failed", "resume", "message"}
    {"type": "tool_use", "id", "name", "input"}
    {"type": "tool_result", "tool_use_id", "content", "is_error"}
    {"type": "permission_expired", "request_id", "reason"}
    {"type": "result", "subtype", "session_id", "duration_ms", "total_cost_usd",
     "num_turns", "is_error", "result"}

Tool events from a subagent also carry ``parent_tool_use_id``. Text streams
through ``Sink.text`` as deltas and is never repeated as an event.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import claude_agent_sdk
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    CLIConnectionError,
    CLIJSONDecodeError,
    CLINotFoundError,
    PermissionResultAllow,
    PermissionResultDeny,
    ProcessError,
    ResultError,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from agent_client import launcher
from agent_client.steering import offered, prompt_input
from protocol.events import PERMISSION_MODES, PROJECT_PERMISSION_MODES

log = logging.getLogger("tether.agent")

# Modes a command may ask for; bypassPermissions only with the agent's own flag for it.
BYPASS_MODE = "bypassPermissions"
INTERRUPT_GRACE_S = 10.0  # after an interrupt, how long Claude Code gets to end the turn
PREDECESSOR_WAIT_S = 30.0  # how long a new client waits for the old one to close
CLOSE_JOIN_S = 20.0  # how long close() waits for each worker thread
CLOSE_PIPES_S = 5.0  # how long closing a client's leftover pipes may take
MAX_TOOL_OUTPUT = 64 * 1024  # characters of a tool result passed on as an event
STDERR_LINES = 50  # stderr lines kept per session for error messages
STDERR_DETAIL = 600  # characters of stderr quoted in an error message
# One JSON message from Claude Code holds a whole answer, or a whole file a Write
# tool call writes: the SDK's own default (1 MiB) ended such turns with an error.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_WARM_SESSIONS = 4  # live Claude Code processes (about 175 MB each)
AGENT_PID_ENV = "TETHER_AGENT_PID"  # marks the agent's Claude Code processes (and theirs)


@dataclass
class RunRequest:
    """One prompt to run in a Tether session.

    Attributes:
        session_id: Tether's session id; commands of one session run one at a time.
        command_id: Tether's id for this command, echoed in every sink call.
        prompt: The user's prompt.
        cwd: Working directory for Claude Code; must exist on this machine.
        resume: Claude Code session id to resume when this process holds no live
            client for the session (the server stores the id from the init event).
        permission_mode: ``"default"``, ``"acceptEdits"`` or ``"plan"``;
            ``"bypassPermissions"`` only when the manager has ``allow_bypass``.
            None means ``"default"``.
        model: Model name for Claude Code; None keeps Claude Code's default.
        attachments: Files sent with the prompt, ``[{"name", "mediaType", "data"}]``
            (base64): images reach the model as image blocks, text files as text
            blocks (agent_client/steering.py).
    """

    session_id: str
    command_id: str
    prompt: str
    cwd: str
    resume: str | None = None
    permission_mode: str | None = None
    model: str | None = None
    attachments: list[dict] = field(default_factory=list)


class Sink(Protocol):
    """Where a SessionManager sends output. Called from worker threads; must not block long."""

    def text(self, session_id: str, command_id: str, text: str) -> None:
        """One text delta of the answer, in order."""

    def event(self, session_id: str, command_id: str, event: dict) -> None:
        """A structured, JSON-serialisable message (see the module docstring)."""

    def permission(
        self,
        session_id: str,
        command_id: str,
        request_id: str,
        tool_name: str,
        tool_input: dict,
    ) -> None:
        """Claude Code asks to use a tool; answer with SessionManager.answer_permission."""

    def finish(self, session_id: str, command_id: str, error: dict | None) -> None:
        """The command ended: exactly once per command. error is None or {"code", "message"}."""


class SessionBusy(Exception):
    """The session already runs a command."""


class SessionManager:
    """Runs Claude Code for many Tether sessions, one worker thread each.

    Args:
        sink: Receives text, events, permission requests and finishes.
        cli_path: Claude Code executable to run; None uses the SDK's bundled CLI.
        env: Extra environment variables for Claude Code (merged over the agent's).
        idle_timeout: Seconds a live client may sit idle before it is closed.
        permission_timeout: Seconds to wait for a permission answer before denying.
        allow_bypass: Accept the ``bypassPermissions`` permission mode.
        max_message_bytes: Largest JSON message read from Claude Code; a larger
            one ends the turn with an error that says so.
        max_warm_sessions: Live clients kept at most; the least recently used
            idle one is closed to make room (its session resumes on its next prompt).
        exit_with_agent: Start Claude Code through the launcher that ends it
            with this process (where the system allows: not on Windows).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        cli_path: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        idle_timeout: float = 600.0,
        permission_timeout: float = 300.0,
        allow_bypass: bool = False,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_warm_sessions: int = DEFAULT_MAX_WARM_SESSIONS,
        exit_with_agent: bool = True,
    ) -> None:
        if max_warm_sessions < 1:
            raise ValueError("max_warm_sessions must be 1 or more")
        self.sink = sink
        self.cli_path = os.fspath(cli_path) if cli_path else None
        self.env = {**(env or {}), AGENT_PID_ENV: str(os.getpid())}
        self.idle_timeout = idle_timeout
        self.permission_timeout = permission_timeout
        self.allow_bypass = allow_bypass
        self.max_message_bytes = max_message_bytes
        self.max_warm_sessions = max_warm_sessions
        self._claude = _find_claude(self.cli_path)
        self._wrapper_dir: str | None = None  # holds the launcher's wrapper script
        self._wrapper: str | None = None
        mode = launcher.default_mode()
        if exit_with_agent and mode and self._claude:
            self._wrapper_dir, self._wrapper = launcher.make_wrapper(self._claude, mode)
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._closing: dict[str, _Session] = {}  # retired, thread still ending
        self._claude_ids: dict[str, str] = {}  # Tether session -> Claude Code session
        self._closed = False

    def run(self, request: RunRequest) -> None:
        """Start running a prompt; returns at once.

        Output arrives through the sink, ending with exactly one ``finish``.

        Raises:
            SessionBusy: The session already runs a command.
            RuntimeError: The manager is closed.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the session manager is closed")
            session = self._sessions.get(request.session_id)
            if session is not None and session.command is not None:
                raise SessionBusy(f"session {request.session_id} already runs a command")
            if session is None:
                session = _Session(self, request.session_id, self._make_room(request.session_id))
                self._sessions[request.session_id] = session
                session.start()
            session.command = request
            session.last_used = time.monotonic()
        session.submit(request)

    def cancel(self, session_id: str) -> bool:
        """Interrupt the session's running command.

        Its ``finish`` then gets ``{"code": "interrupted", ...}`` (or None if it
        had already completed). Returns False when nothing was running.
        """
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.command is None:
                return False
        session.cancel()
        return True

    def answer_permission(
        self, session_id: str, request_id: str, decision: str, message: str | None = None
    ) -> bool:
        """Answer a permission request: decision is ``"allow"`` or ``"deny"``.

        A denial's message is shown to the model, and the run goes on. Returns
        False when no such request is waiting (answered, expired or unknown).

        Raises:
            ValueError: decision is neither "allow" nor "deny".
        """
        if decision not in ("allow", "deny"):
            raise ValueError(f"decision must be 'allow' or 'deny', not {decision!r}")
        with self._lock:
            session = self._sessions.get(session_id)
        return session is not None and session.answer(request_id, decision, message)

    def running(self) -> list[str]:
        """Command ids running now."""
        with self._lock:
            return [s.command.command_id for s in self._sessions.values() if s.command]

    def live_sessions(self) -> list[str]:
        """Session ids whose worker (and maybe a live Claude Code client) is up."""
        with self._lock:
            return list(self._sessions)

    def close(self) -> None:
        """Stop all sessions: running commands finish as interrupted, clients close."""
        with self._lock:
            self._closed = True
            sessions = [*self._sessions.values(), *self._closing.values()]
        for session in sessions:
            session.shutdown()
        for session in sessions:
            session.join(CLOSE_JOIN_S)
        if self._wrapper_dir:
            shutil.rmtree(self._wrapper_dir, ignore_errors=True)

    def claude_command(self) -> str | None:
        """What the SDK runs: the launcher's wrapper, or the CLI itself (None: the SDK finds it)."""
        return self._wrapper or self.cli_path

    def check_claude(self) -> None:
        """Raise CLINotFoundError when the CLI the wrapper would exec is missing.

        The wrapper itself always exists, so the SDK's own check cannot see this.
        """
        if self._wrapper and not (os.path.isfile(self._claude) and os.access(self._claude, os.X_OK)):
            raise CLINotFoundError(f"Claude Code not found at: {self._claude}")

    # --- warm sessions (called with the lock held) ---------------------------

    def _make_room(self, session_id: str) -> list[_Session]:
        """Keep live clients within max_warm_sessions before one more starts.

        Closes the least recently used idle sessions as needed (the idle-timeout
        path: they resume on their next prompt) and returns the sessions the new
        one must see end before it starts Claude Code: its own predecessor (it
        may still be writing the transcript) and, at the bound, every session on
        its way out. Busy sessions are never closed: with more turns running at
        once than the bound, the extra clients are closed as their turns end.
        """
        if len(self._sessions) + len(self._closing) + 1 > self.max_warm_sessions:
            self._evict_idle(len(self._sessions) + 1 - self.max_warm_sessions)
            return list(self._closing.values())
        before = self._closing.get(session_id)
        return [before] if before is not None else []

    def _evict_idle(self, count: int) -> None:
        if count <= 0:
            return
        idle = sorted((s for s in self._sessions.values() if s.command is None), key=lambda s: s.last_used)
        for session in idle[:count]:
            log.info(
                "session %s: closing Claude Code, the least recently used of %d warm sessions",
                session.session_id,
                self.max_warm_sessions,
            )
            del self._sessions[session.session_id]
            self._closing[session.session_id] = session
            session.evict()

    # --- called by the sessions -------------------------------------------

    def _claude_id(self, session_id: str) -> str | None:
        with self._lock:
            return self._claude_ids.get(session_id)

    def _remember(self, session_id: str, claude_id: str) -> None:
        with self._lock:
            self._claude_ids[session_id] = claude_id

    def _command_done(self, session: _Session) -> None:
        with self._lock:
            session.command = None
            session.last_used = time.monotonic()
            # Over the bound because more turns ran at once than it allows: trim now.
            excess = len(self._sessions) - self.max_warm_sessions
            if excess > 0:
                self._evict_idle(excess)

    def _retire(self, session: _Session) -> bool:
        """Let an idle session end, unless a command was just submitted to it."""
        with self._lock:
            if session.command is not None:
                return False
            if self._sessions.get(session.session_id) is session:
                del self._sessions[session.session_id]
            self._closing[session.session_id] = session
            return True

    def _ended(self, session: _Session) -> RunRequest | None:
        """Forget an ended session; returns a command it was given but never ran."""
        with self._lock:
            if self._sessions.get(session.session_id) is session:
                del self._sessions[session.session_id]
            if self._closing.get(session.session_id) is session:
                del self._closing[session.session_id]
            leftover, session.command = session.command, None
            return leftover


@dataclass
class _Command:
    """State of the command a session is running."""

    request: RunRequest
    started: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    query_sent: bool = False
    interrupting: bool = False
    abandoned: bool = False  # the turn did not end after an interrupt
    pump: asyncio.Task | None = None
    stderr_mark: int = 0
    messages: int = 0  # SDK messages received this turn
    deltas: int = 0
    tools: int = 0
    auth_failed: bool = False


_INTERRUPTED = {"code": "interrupted", "message": "Stopped by the user."}


class _Session:
    """One Tether session: a worker thread, its event loop and its Claude Code client."""

    def __init__(self, manager: SessionManager, session_id: str, after: list[_Session]):
        self.manager = manager
        self.session_id = session_id
        self.command: RunRequest | None = None  # guarded by manager._lock
        self.last_used = time.monotonic()  # guarded by manager._lock
        self._after = after  # retired sessions to see closed before starting Claude Code
        self._loop = asyncio.new_event_loop()
        self._inbox: asyncio.Queue[RunRequest | None] = asyncio.Queue()
        self._thread = threading.Thread(
            target=self._thread_main, name=f"claude-{session_id[:12]}", daemon=True
        )
        self.done = threading.Event()
        self._client: ClaudeSDKClient | None = None
        self._client_cwd: str | None = None
        self._mode: str | None = None
        self._model: str | None = None
        self._claude_id: str | None = None
        self._offered: dict[str, list] = {}  # slash commands and models the live Claude Code offers
        self._active: _Command | None = None
        self._permissions: dict[str, asyncio.Future] = {}
        self._pending_ids: set[str] = set()  # request ids, readable from any thread
        self._pending_lock = threading.Lock()
        self._stderr: collections.deque[tuple[int, str]] = collections.deque(maxlen=STDERR_LINES)
        self._stderr_count = 0
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False

    # --- entry points from other threads ------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, request: RunRequest) -> None:
        # If the loop has closed (close() raced with run()), the thread's exit
        # has already finished the command: see _thread_main.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._inbox.put_nowait, request)

    def cancel(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_cancel)

    def answer(self, request_id: str, decision: str, message: str | None) -> bool:
        with self._pending_lock:
            if request_id not in self._pending_ids:
                return False
            self._pending_ids.discard(request_id)
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._resolve, request_id, (decision, message))
        return True

    def evict(self) -> None:
        """End the session as an idle timeout would (the manager has retired it)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._inbox.put_nowait, None)

    def shutdown(self) -> None:
        # A RuntimeError means the loop has already closed: the thread is gone.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_shutdown)

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- the worker thread ----------------------------------------------------

    def _thread_main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException:
            log.exception("session %s: worker failed", self.session_id)
        finally:
            self._cancel_helpers()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
            leftover = self.manager._ended(self)
            if leftover is not None:
                # Submitted while the session was shutting down: it never ran.
                error = {"code": "interrupted", "message": "The agent is shutting down."}
                self._finish(_Command(leftover), error, free=False)
            self.done.set()

    async def _serve(self) -> None:
        try:
            while (request := await self._next_request()) is not None:
                await self._handle(request)
        finally:
            await self._disconnect()

    async def _next_request(self) -> RunRequest | None:
        """The next command, or None when the session should end (idle or shut down)."""
        while True:
            if self._stopping:
                return None
            if self._client is None and self._inbox.empty():
                # Nothing live to keep: end now unless a command is on its way.
                if self.manager._retire(self):
                    return None
                return await self._inbox.get()
            try:
                return await asyncio.wait_for(self._inbox.get(), self.manager.idle_timeout)
            except TimeoutError:
                if self.manager._retire(self):
                    log.info("session %s: idle, closing Claude Code", self.session_id)
                    return None

    async def _handle(self, request: RunRequest) -> None:
        command = _Command(request, stderr_mark=self._stderr_count)
        self._active = command
        error: dict | None = None
        try:
            error = await self._execute(command)
        except Exception as exc:  # everything becomes a finish, nothing escapes
            error = {"code": "claude_error", "message": self._explain(exc, command)}
            # The client may be half broken: start afresh (and resume) next time.
            await self._disconnect()
        finally:
            self._active = None
            self._finish(command, error)

    async def _execute(self, command: _Command) -> dict | None:
        request = command.request
        if self._stopping:
            return {"code": "interrupted", "message": "The agent is shutting down."}
        problem = self._check(request)
        if problem is not None:
            return {"code": "bad_request", "message": problem}
        fresh = await self._prepare_client(request)
        if command.cancelled:
            return _INTERRUPTED
        try:
            await self._configure(request)
            return await self._turn(command)
        except Exception:
            if fresh or command.messages or command.cancelled:
                raise
        # The live client's CLI had died while idle (the failure came before any
        # message of this turn): start it again, resuming, and retry once.
        log.info("session %s: Claude Code had exited, restarting it", self.session_id)
        await self._disconnect()
        await self._connect(request)
        return await self._turn(command)

    async def _turn(self, command: _Command) -> dict | None:
        """Send the prompt and relay the turn; returns the finish error."""
        assert self._client is not None
        await self._client.query(prompt_input(command.request.prompt, command.request.attachments))
        command.query_sent = True
        if command.cancelled:
            self._start_interrupt(command)
        command.pump = asyncio.ensure_future(self._pump(command))
        try:
            result = await command.pump
        except asyncio.CancelledError:
            if not command.abandoned:
                raise
            await self._disconnect()
            return {
                "code": "interrupted",
                "message": "Claude Code did not stop in time, so it was closed.",
            }
        return self._outcome(command, result)

    def _check(self, request: RunRequest) -> str | None:
        """What is wrong with a request, in words a user understands; None if fine."""
        mode = request.permission_mode or "default"
        if mode == BYPASS_MODE and not self.manager.allow_bypass:
            return "This agent does not allow the bypassPermissions mode."
        if mode not in PERMISSION_MODES:
            return f"Unknown permission mode {mode!r}; use one of {', '.join(PROJECT_PERMISSION_MODES)}."
        if not os.path.isdir(request.cwd):
            return f"The working directory {request.cwd} does not exist on this machine."
        if not request.prompt.strip():
            return "The prompt is empty."
        return None

    # --- the Claude Code client -------------------------------------------------

    async def _prepare_client(self, request: RunRequest) -> bool:
        """Reuse the live client, or start one (resuming the session when known).

        Returns True when a new client was started.
        """
        moved = os.path.normpath(request.cwd) != self._client_cwd
        other = request.resume is not None and request.resume != self._claude_id
        if self._client is not None and (moved or other):
            await self._disconnect()
        if self._client is None:
            await self._connect(request)
            return True
        return False

    async def _configure(self, request: RunRequest) -> None:
        """Bring the live client's permission mode and model in line with the request."""
        assert self._client is not None
        mode = request.permission_mode or "default"
        if mode != self._mode:
            await self._client.set_permission_mode(mode)  # type: ignore[arg-type]
            self._mode = mode
        if request.model != self._model:
            await self._client.set_model(request.model)
            self._model = request.model

    async def _connect(self, request: RunRequest) -> None:
        mode = request.permission_mode or "default"
        # The previous client of this session may still be writing its transcript
        # (resuming before it is done could lose the last turn), and clients closed
        # to make room for this one may still be running.
        deadline = time.monotonic() + PREDECESSOR_WAIT_S
        for before in self._after:
            await asyncio.to_thread(before.done.wait, max(0.0, deadline - time.monotonic()))
        self._after = []
        resume = request.resume or self._claude_id or self.manager._claude_id(self.session_id)
        try:
            client = await self._start_client(request, mode, resume)
        except ProcessError as exc:
            if not resume or "No conversation found" not in str(exc):
                raise
            # The transcript is gone (another machine, a wiped config dir):
            # answer the prompt in a new conversation rather than fail forever.
            self._event(
                {
                    "type": "system",
                    "subtype": "resume_failed",
                    "resume": resume,
                    "message": "The earlier conversation was not found on this machine; "
                    "a new one was started.",
                }
            )
            client = await self._start_client(request, mode, None)
        self._client = client
        self._client_cwd = os.path.normpath(request.cwd)
        self._mode = mode
        self._model = request.model

    async def _start_client(self, request: RunRequest, mode: str, resume: str | None) -> ClaudeSDKClient:
        options = ClaudeAgentOptions(
            cwd=request.cwd,
            resume=resume,
            permission_mode=mode,  # type: ignore[arg-type]
            model=request.model,
            cli_path=self.manager.claude_command(),
            env=self.manager.env,
            max_buffer_size=self.manager.max_message_bytes,
            system_prompt={"type": "preset", "preset": "claude_code"},
            include_partial_messages=True,
            can_use_tool=self._can_use_tool,
            stderr=self._on_stderr,
        )
        self.manager.check_claude()
        client = ClaudeSDKClient(options)
        await client.connect()
        self._offered = offered(await client.get_server_info())
        return client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        self._client_cwd = None
        if client is None:
            return
        # After a turn that failed mid-message the SDK leaves Claude Code's stdout
        # pipe open (it stopped reading): the garbage collector would close it
        # later, from another thread, on this session's loop after it has closed.
        process = getattr(getattr(client, "_transport", None), "_process", None)
        try:
            await client.disconnect()
        except Exception:
            log.debug("session %s: error while closing Claude Code", self.session_id, exc_info=True)
        if process is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.aclose(), CLOSE_PIPES_S)

    # --- one turn's messages ------------------------------------------------

    async def _pump(self, command: _Command) -> ResultMessage | None:
        """Relay the turn's messages to the sink; returns its ResultMessage."""
        assert self._client is not None
        async for message in self._client.receive_response():
            command.messages += 1
            if isinstance(message, StreamEvent):
                self._relay_delta(command, message)
            elif isinstance(message, SystemMessage):
                self._relay_system(message)
            elif isinstance(message, AssistantMessage):
                self._relay_assistant(command, message)
            elif isinstance(message, UserMessage):
                self._relay_user(message)
            elif isinstance(message, ResultMessage):
                self._event(_result_event(message))
                return message
        return None

    def _relay_delta(self, command: _Command, message: StreamEvent) -> None:
        event = message.event
        # Only the main agent's text: a subagent's would interleave with it.
        if event.get("type") != "content_block_delta" or message.parent_tool_use_id:
            return
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            command.deltas += 1
            self._call("text", delta["text"])

    def _relay_system(self, message: SystemMessage) -> None:
        if message.subtype != "init":
            return
        data = message.data
        self._claude_id = data.get("session_id") or self._claude_id
        if self._claude_id:
            self.manager._remember(self.session_id, self._claude_id)
        self._event(
            {
                "type": "system",
                "subtype": "init",
                "session_id": data.get("session_id"),
                "cwd": data.get("cwd"),
                "model": data.get("model"),
                "tools": list(data.get("tools") or []),
                "permissionMode": data.get("permissionMode"),
                "slash_commands": list(data.get("slash_commands") or []),
                **self._offered,
            }
        )

    def _relay_assistant(self, command: _Command, message: AssistantMessage) -> None:
        if message.error == "authentication_failed":
            command.auth_failed = True
        for block in message.content:
            # Text blocks are skipped: their text already streamed as deltas.
            if isinstance(block, ToolUseBlock):
                command.tools += 1
                event = {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
                self._event(_with_parent(event, message.parent_tool_use_id))

    def _relay_user(self, message: UserMessage) -> None:
        if isinstance(message.content, str):
            return
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                event = {
                    "type": "tool_result",
                    "tool_use_id": block.tool_use_id,
                    "content": _tool_output(block.content),
                    "is_error": bool(block.is_error),
                }
                self._event(_with_parent(event, message.parent_tool_use_id))

    def _outcome(self, command: _Command, result: ResultMessage | None) -> dict | None:
        """The finish error for a turn that ran to its end (or to the CLI's end)."""
        if result is None:
            return {
                "code": "claude_error",
                "message": "Claude Code stopped before finishing the answer." + self._stderr_detail(command),
            }
        if not result.is_error:
            return None
        if command.cancelled or result.terminal_reason in ("aborted_streaming", "aborted_tools"):
            return _INTERRUPTED
        return {"code": "claude_error", "message": self._result_message(command, result)}

    def _result_message(self, command: _Command, result: ResultMessage) -> str:
        said = (result.result or "; ".join(result.errors or []) or result.subtype).strip()
        if command.auth_failed or result.api_error_status in (401, 403):
            text = (
                f"Claude Code could not authenticate with the model API ({said}). "
                "Log in with `claude /login` on this machine or give the agent an "
                "ANTHROPIC_API_KEY."
            )
        elif result.api_error_status or result.terminal_reason == "api_error":
            text = f"The model API answered with an error: {said}"
        else:
            text = f"Claude Code ended the turn with an error ({result.subtype}): {said}"
        return text + self._stderr_detail(command)

    def _explain(self, exc: Exception, command: _Command) -> str:
        """A sentence a user understands for an exception from the SDK."""
        if isinstance(exc, CLINotFoundError):
            where = self.manager.cli_path or "the bundled CLI"
            text = (
                f"Claude Code was not found ({where}). Install it, or point the agent "
                "at it with --claude PATH."
            )
        elif isinstance(exc, ResultError):
            said = exc.result or "; ".join(exc.errors) or exc.subtype or "no details"
            text = f"Claude Code could not run the session: {said}."
        elif isinstance(exc, CLIJSONDecodeError) and "maximum buffer size" in str(exc):
            limit = self.manager.max_message_bytes / (1024 * 1024)
            text = (
                f"Claude Code sent a message larger than this agent's limit of {limit:g} MiB "
                "(an answer or a tool call too large), so the turn was stopped. "
                "Start the agent with a larger --max-message-mb to allow it."
            )
        elif isinstance(exc, ProcessError):
            text = f"Claude Code exited unexpectedly (exit code {exc.exit_code})."
        elif isinstance(exc, CLIConnectionError):
            text = f"Claude Code could not be run: {exc}."
        else:
            text = f"Claude Code failed: {type(exc).__name__}: {exc}."
        return text + self._stderr_detail(command)

    # --- interrupts and permissions -------------------------------------------

    def _on_cancel(self) -> None:
        command = self._active
        if command is None or command.cancelled:
            return
        command.cancelled = True
        waiting = [f for f in self._permissions.values() if not f.done()]
        for future in waiting:
            # A deny with interrupt ends the turn; an interrupt on top of it
            # could leave a stray result for the next turn to read.
            future.set_result(("interrupt", None))
        if waiting:
            self._spawn(self._watchdog(command))
        elif command.query_sent:
            self._start_interrupt(command)

    def _start_interrupt(self, command: _Command) -> None:
        if command.interrupting:
            return
        command.interrupting = True
        self._spawn(self._interrupt())
        self._spawn(self._watchdog(command))

    async def _interrupt(self) -> None:
        if self._client is None:
            return
        try:
            await asyncio.wait_for(self._client.interrupt(), INTERRUPT_GRACE_S)
        except Exception:
            log.warning("session %s: interrupt failed", self.session_id, exc_info=True)

    async def _watchdog(self, command: _Command) -> None:
        """If the turn has not ended a while after an interrupt, give up on it."""
        await asyncio.sleep(INTERRUPT_GRACE_S)
        if self._active is command and command.pump is not None and not command.pump.done():
            log.warning("session %s: turn did not end after interrupt", self.session_id)
            command.abandoned = True
            command.pump.cancel()

    def _on_shutdown(self) -> None:
        self._stopping = True
        self._on_cancel()
        self._inbox.put_nowait(None)

    async def _can_use_tool(self, tool_name: str, tool_input: dict, context: Any) -> Any:
        """Ask the sink, then await the answer without blocking the loop."""
        command = self._active
        if command is None or command.cancelled:
            return PermissionResultDeny(message="The command was stopped.", interrupt=True)
        request_id = uuid.uuid4().hex
        future = self._loop.create_future()
        self._permissions[request_id] = future
        with self._pending_lock:
            self._pending_ids.add(request_id)
        self._call("permission", request_id, tool_name, tool_input)
        timeout = self.manager.permission_timeout
        try:
            decision, message = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._expired(request_id, "timeout")
            return PermissionResultDeny(
                message=f"No answer to the permission request within {timeout:g} s, so the tool was not run."
            )
        except asyncio.CancelledError:
            # Claude Code withdrew the request (its turn was interrupted).
            self._expired(request_id, "cancelled")
            raise
        finally:
            self._permissions.pop(request_id, None)
            with self._pending_lock:
                self._pending_ids.discard(request_id)
        if decision == "allow":
            return PermissionResultAllow()
        if decision == "interrupt":
            self._expired(request_id, "interrupted")
            return PermissionResultDeny(message="The user stopped the command.", interrupt=True)
        return PermissionResultDeny(message=message or "The user denied this tool use.")

    def _resolve(self, request_id: str, answer: tuple[str, str | None]) -> None:
        future = self._permissions.get(request_id)
        if future is not None and not future.done():
            future.set_result(answer)

    def _expired(self, request_id: str, reason: str) -> None:
        self._event({"type": "permission_expired", "request_id": request_id, "reason": reason})

    # --- output -----------------------------------------------------------------

    def _event(self, event: dict) -> None:
        self._call("event", event)

    def _call(self, method: str, *args: Any) -> None:
        """Call the sink for the active command; a failing sink must not kill the worker."""
        command = self._active
        if command is None:
            return
        request = command.request
        try:
            getattr(self.manager.sink, method)(request.session_id, request.command_id, *args)
        except Exception:
            log.exception("session %s: sink.%s failed", self.session_id, method)

    def _finish(self, command: _Command, error: dict | None, free: bool = True) -> None:
        request = command.request
        if free:
            # Free the session first, so the sink may start the next command at once.
            self.manager._command_done(self)
        elapsed = time.monotonic() - command.started
        outcome = "ok" if error is None else f"{error['code']}: {error['message']}"
        log.info(
            "session %s command %s: %s (%.2f s, %d text deltas, %d tool calls)",
            request.session_id,
            request.command_id,
            outcome,
            elapsed,
            command.deltas,
            command.tools,
        )
        try:
            self.manager.sink.finish(request.session_id, request.command_id, error)
        except Exception:
            log.exception("session %s: sink.finish failed", self.session_id)

    def _on_stderr(self, line: str) -> None:
        self._stderr_count += 1
        self._stderr.append((self._stderr_count, line))
        log.debug("session %s: claude stderr: %s", self.session_id, line)

    def _stderr_detail(self, command: _Command) -> str:
        lines = [line for n, line in self._stderr if n > command.stderr_mark and line.strip()]
        if not lines:
            return ""
        detail = " | ".join(line.strip() for line in lines[-5:])
        if len(detail) > STDERR_DETAIL:
            detail = "…" + detail[-STDERR_DETAIL:]
        return f" Claude Code said: {detail}"

    def _cancel_helpers(self) -> None:
        """Watchdogs and interrupts still pending when the session ends die quietly with it."""
        pending = [task for task in self._tasks if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _find_claude(cli_path: str | None) -> str | None:
    """The Claude Code the SDK would run: the one given, the one in its wheel, or claude on PATH.

    A path given is made absolute (the launcher execs it from the session's working
    directory, and without a PATH search).
    """
    if cli_path:
        return shutil.which(cli_path) or os.path.abspath(cli_path)
    name = "claude.exe" if os.name == "nt" else "claude"
    bundled = os.path.join(os.path.dirname(claude_agent_sdk.__file__), "_bundled", name)
    return bundled if os.path.isfile(bundled) else shutil.which("claude")


def _with_parent(event: dict, parent: str | None) -> dict:
    if parent:
        event["parent_tool_use_id"] = parent
    return event


def _tool_output(content: Any) -> str:
    """A tool result as text; images become a placeholder, long output is cut."""
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        parts = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif isinstance(block, dict):
                parts.append(f"[{block.get('type', 'content')}]")
        text = "\n".join(parts)
    if len(text) > MAX_TOOL_OUTPUT:
        text = text[:MAX_TOOL_OUTPUT] + f"\n… ({len(text) - MAX_TOOL_OUTPUT} more characters)"
    return text


def _result_event(message: ResultMessage) -> dict:
    return {
        "type": "result",
        "subtype": message.subtype,
        "session_id": message.session_id,
        "duration_ms": message.duration_ms,
        "total_cost_usd": message.total_cost_usd,
        "num_turns": message.num_turns,
        "is_error": message.is_error,
        "result": message.result,
    }
