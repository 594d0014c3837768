"""The agent's Socket.IO client: commands in, Claude Code output out.

The Socket.IO thread never blocks: each command runs in the session's worker
thread (agent_client.claude_runner), output goes through the Outbox, and the
handlers here only validate, hand over and acknowledge.
"""

import contextlib
import logging
import socket
import threading
import time
from collections import OrderedDict

import socketio

from agent_client.claude_runner import RunRequest, SessionBusy
from agent_client.outbox import Outbox
from agent_client.shrink import shrink
from agent_client.version import agent_version
from agent_client.workdirs import WorkdirRefused, resolve_workdir
from agent_client.workspace import Workspace
from protocol import (
    AGENT_NAMESPACE,
    ERROR_CODES,
    PROTOCOL_VERSION,
    Events,
    ProtocolError,
    error_reply,
    load,
    ok_reply,
)

log = logging.getLogger("tether.agent")
HEARTBEAT_INTERVAL = 10.0
FINAL_ERROR_CODES = set(ERROR_CODES)
ACCEPTED_MEMORY = 10_000


class FatalConnectError(RuntimeError):
    """The server refused us for a reason that retrying cannot fix (bad token, old protocol)."""


class AgentClient:
    """Connects to a Tether server as one agent and runs the commands it is sent."""

    def __init__(
        self,
        server_url,
        token,
        *,
        name=None,
        roots=(),
        runner_factory,
        state_dir=None,
        demo=False,
        coalesce_window=0.005,
    ):
        """`runner_factory(sink)` builds the SessionManager that runs Claude Code."""
        self.server_url = server_url.rstrip("/")
        self.token = token
        self.name = name or socket.gethostname()
        self.roots = list(roots)
        self.demo = demo
        self.sio = socketio.Client(
            reconnection=True,
            reconnection_attempts=0,  # for ever
            reconnection_delay=0.5,
            reconnection_delay_max=15,
            randomization_factor=0.5,
            # websocket-client checks UTF-8 in Python (0.5 s per MB: an agent_command with
            # attachments is 7); it decodes text frames strictly anyway.
            websocket_extra_options={"skip_utf8_validation": True},
        )
        self.outbox = Outbox(self._send_chunk, window=coalesce_window, state_dir=state_dir)
        self.runner = runner_factory(self)
        self.workspace = Workspace(self.roots)  # files and changes, answered in a pool of its own
        self._pending_permissions = {}  # request id -> permission_request payload
        self._accepted = OrderedDict()  # recent command ids, so a resent command runs once
        self._lock = threading.Lock()
        self._fatal = None
        self._stopped = threading.Event()
        self._stop_asked = False  # set by request_stop(), from a signal handler
        self._register_handlers()

    # -- Sink interface, called by the runner's worker threads ----------------

    def text(self, session_id, command_id, text):
        self.outbox.text(session_id, command_id, text)

    def event(self, session_id, command_id, event):
        if event.get("type") == "permission_expired":
            with self._lock:
                self._pending_permissions.pop(event.get("request_id"), None)
        self.outbox.event(session_id, command_id, shrink(event))

    def finish(self, session_id, command_id, error):
        if error and error.get("code") not in FINAL_ERROR_CODES:
            # e.g. the runner's bad_request: the wire contract's nearest code.
            error = {"code": "invalid_message", "message": error.get("message", "")}
        outcome = error["code"] if error else "done"
        log.info("command %s finished: %s", command_id, outcome)
        self.outbox.finish(session_id, command_id, error)

    def permission(self, session_id, command_id, request_id, tool_name, tool_input):
        payload = {
            "type": Events.PERMISSION_REQUEST,
            "sessionId": session_id,
            "commandId": command_id,
            "requestId": request_id,
            "toolName": tool_name,
            "input": shrink(tool_input),
        }
        with self._lock:
            self._pending_permissions[request_id] = payload
        self._ask(payload)

    # -- connection --------------------------------------------------------------

    def run(self):
        """Connect (retrying while the server is unreachable) and serve until asked to stop;
        the caller then calls stop()."""
        self.outbox.recover()
        delay = 0.5
        while not self._stopping(0):
            try:
                self._connect()
                break
            except FatalConnectError:
                raise
            except socketio.exceptions.ConnectionError as error:
                if self._fatal:
                    raise FatalConnectError(self._fatal) from None
                log.warning("cannot reach %s (%s); retrying in %.0f s", self.server_url, error, delay)
                self._stopping(delay)
                delay = min(delay * 2, 15)
        threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True).start()
        while not self._stopping(3600):
            pass
        if self._fatal:
            raise FatalConnectError(self._fatal)

    def request_stop(self):
        """Make run() return soon. Safe in a signal handler: it only sets a flag. A handler that
        stopped the agent itself could run inside a stop already under way (a second signal),
        and wait forever for a lock that the stop it interrupted holds."""
        self._stop_asked = True

    def _stopping(self, seconds):
        """Wait up to `seconds` for a reason to stop; True once there is one. Looks at the
        signal handler's flag every 0.1 s."""
        deadline = time.monotonic() + seconds
        while not self._stop_asked:
            if self._stopped.wait(max(0, min(deadline - time.monotonic(), 0.1))):
                return True
            if time.monotonic() >= deadline:
                return False
        return True

    def stop(self):
        log.info("stopping")
        self._stopped.set()
        self.workspace.close()
        self.runner.close()
        self.outbox.close()
        self.sio.disconnect()
        log.info("stopped")

    def _connect(self):
        self.sio.connect(
            self.server_url,
            namespaces=[AGENT_NAMESPACE],
            auth=self._auth,
            transports=["websocket"],
            wait_timeout=10,
        )

    def _auth(self):
        return {
            "token": self.token,
            "protocolVersion": PROTOCOL_VERSION,
            "name": self.name,
            "hostname": socket.gethostname(),
            "roots": self.roots,
            "demo": self.demo,
            "version": agent_version(),
        }

    def _register_handlers(self):
        on = self.sio.on
        on("connect", self._on_connect, namespace=AGENT_NAMESPACE)
        on("disconnect", self._on_disconnect, namespace=AGENT_NAMESPACE)
        on("connect_error", self._on_connect_error, namespace=AGENT_NAMESPACE)
        on(Events.AGENT_COMMAND, self._on_agent_command, namespace=AGENT_NAMESPACE)
        on(Events.CANCEL_COMMAND, self._on_cancel_command, namespace=AGENT_NAMESPACE)
        on(Events.PERMISSION_RESPONSE, self._on_permission_response, namespace=AGENT_NAMESPACE)
        on(Events.WORKSPACE_REQUEST, self.workspace.answer, namespace=AGENT_NAMESPACE)

    def _on_connect(self):
        log.info("connected to %s as %s", self.server_url, self.name)
        self.outbox.online()
        with self._lock:
            pending = list(self._pending_permissions.values())
        for payload in pending:  # still waiting for an answer: ask the server again
            self._ask(payload)
        self._send_heartbeat()

    def _on_disconnect(self, reason=None):
        self.outbox.offline()
        if reason == self.sio.reason.SERVER_DISCONNECT:
            # The server closes an agent's socket on purpose only when its token was
            # revoked or rotated, or another agent connected with the same token.
            # Reconnecting would fail, or throw the other agent out: stop and say why.
            self._fatal = (
                "the server closed this agent's connection: its token was revoked or rotated, "
                "or another agent connected with the same token"
            )
            log.error(self._fatal)
            self._stopped.set()
            return
        if reason == self.sio.reason.CLIENT_DISCONNECT:  # stop() closed it
            log.info("disconnected from the server")
            return
        log.warning("disconnected from the server (%s); reconnecting", reason)

    def _on_connect_error(self, data=None):
        # The server refuses with {"message": ..., "data": {"code": ...}}.
        details = data if isinstance(data, dict) else {"message": str(data)}
        code = (details.get("data") or {}).get("code") if isinstance(details.get("data"), dict) else None
        message = details.get("message")
        if code in ("unauthorized", "protocol_mismatch", "invalid_message"):
            self._fatal = f"the server refused this agent: {message}"
            log.error(self._fatal)
            self._stopped.set()
        else:
            log.warning("connection failed: %s", message)

    # -- server -> agent -----------------------------------------------------------

    def _on_agent_command(self, payload):
        try:
            message = load("agent", Events.AGENT_COMMAND, payload)
            if message["commandId"] in self._accepted:
                return ok_reply(repeated=True)  # sent again by the server: it runs once
            options = message["options"]
            cwd = resolve_workdir(options["workingDirectory"], self.roots)
            self.runner.run(self._request(message, cwd))
        except ProtocolError as error:
            return error_reply(error.code, error.message, error.fields)
        except WorkdirRefused as error:
            return error_reply("forbidden", str(error))
        except SessionBusy as error:
            return error_reply("session_busy", str(error))
        except Exception as error:  # never let a handler die
            log.exception("could not start command")
            return error_reply("internal", str(error))
        self._remember_accepted(message["commandId"])
        log.info("command %s: running in %s", message["commandId"], cwd)
        return ok_reply()

    def _remember_accepted(self, command_id):
        self._accepted[command_id] = True
        while len(self._accepted) > ACCEPTED_MEMORY:
            self._accepted.popitem(last=False)

    def _request(self, message, cwd):
        options = message["options"]
        return RunRequest(
            session_id=message["sessionId"],
            command_id=message["commandId"],
            prompt=message["command"],
            cwd=cwd,
            resume=options.get("resume"),
            permission_mode=options.get("permissionMode"),
            model=options.get("model"),
            attachments=message.get("attachments") or [],
        )

    def _on_cancel_command(self, payload):
        try:
            message = load("agent", Events.CANCEL_COMMAND, payload)
        except ProtocolError as error:
            return error_reply(error.code, error.message, error.fields)
        cancelled = self.runner.cancel(message["sessionId"])
        return ok_reply(cancelled=cancelled)

    def _on_permission_response(self, payload):
        try:
            message = load("agent", Events.PERMISSION_RESPONSE, payload)
        except ProtocolError as error:
            return error_reply(error.code, error.message, error.fields)
        self._answer(message["sessionId"], message["requestId"], message["decision"], message.get("message"))
        return ok_reply()

    def _answer(self, session_id, request_id, decision, message=None):
        with self._lock:
            self._pending_permissions.pop(request_id, None)
        self.runner.answer_permission(session_id, request_id, decision, message)

    # -- agent -> server -------------------------------------------------------------

    def _send_chunk(self, chunk, on_ack):
        self.sio.emit(Events.COMMAND_RESPONSE, chunk, namespace=AGENT_NAMESPACE, callback=on_ack)

    def _ask(self, payload):
        def answered(reply=None):
            # Answered while we were away: the server hands us the stored decision.
            if isinstance(reply, dict) and reply.get("ok") and reply.get("decision"):
                self._answer(
                    payload["sessionId"], payload["requestId"], reply["decision"], reply.get("message")
                )

        # Not connected: it is asked again on reconnect.
        with contextlib.suppress(socketio.exceptions.BadNamespaceError):
            self.sio.emit(Events.PERMISSION_REQUEST, payload, namespace=AGENT_NAMESPACE, callback=answered)

    def _send_heartbeat(self):
        running = sorted(set(self.runner.running()) | set(self.outbox.pending_commands()))
        payload = {"type": Events.AGENT_HEARTBEAT, "running": running}
        with contextlib.suppress(socketio.exceptions.BadNamespaceError):
            self.sio.emit(Events.AGENT_HEARTBEAT, payload, namespace=AGENT_NAMESPACE)

    def _heartbeat_loop(self):
        while not self._stopped.wait(HEARTBEAT_INTERVAL):
            if self.sio.connected:
                self._send_heartbeat()
