"""Storing streamed chunks with group commit, and reading them back by seq.

Agents send one chunk per command at a time and wait for the acknowledgement,
which the server gives once the chunk is stored. A single writer task per
process gathers the chunks that arrive within a few milliseconds, from every
command, and stores them in one transaction: a handful of statements per batch,
never one commit per delta.
"""

import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import insert, update
from sqlalchemy.exc import SQLAlchemyError

from app import db
from app.models import ChatSession, Chunk, Command, PermissionRequest, result_message, utcnow
from protocol import WEB_NAMESPACE, Events

log = logging.getLogger("tether.storage")
STORE_TIMEOUT = 15.0  # seconds an agent's chunk may wait to be stored before it is refused

# A command's final state from its final error code.
FINAL_STATE_BY_ERROR = {None: "done", "interrupted": "stopped"}


@dataclass
class ChunkIn:
    """One chunk to store: from an agent (agent_seq set) or made by the server (agent_seq None)."""

    command_id: str
    agent_seq: int | None
    data: str = ""
    is_complete: bool = False
    event: dict | None = None
    error: dict | None = None
    outcome: str | None = None  # stored | duplicate | ignored | held | failed
    done: object = field(default=None, repr=False)
    deadline: float = float("inf")


def _agent_order(chunk):
    # Server-made chunks (no agent seq) close a command: after its agent's chunks.
    return (chunk.command_id, chunk.agent_seq if chunk.agent_seq is not None else float("inf"))


def stored_results(session_id, after_seq, upto_seq=None, limit=500):
    """Stored results of a session with seq > after_seq (and <= upto_seq), plus its last seq."""
    query = db.select(Chunk).filter(Chunk.session_id == session_id, Chunk.seq > after_seq)
    if upto_seq is not None:
        query = query.filter(Chunk.seq <= upto_seq)
    chunks = db.session.scalars(query.order_by(Chunk.seq).limit(limit)).all()
    last_seq = db.session.scalar(db.select(ChatSession.last_seq).filter_by(id=session_id)) or 0
    db.session.rollback()  # end the read transaction: later reads must see new commits
    return [chunk.to_wire() for chunk in chunks], last_seq


def session_heads(session_ids):
    """The last seq of each session, in one query."""
    rows = db.session.execute(
        db.select(ChatSession.id, ChatSession.last_seq).filter(ChatSession.id.in_(session_ids))
    ).all()
    db.session.rollback()
    return dict(rows)


class ChunkWriter:
    """The process's single writer: batches chunks, stores them, then fans them out."""

    def __init__(self, app, socketio):
        self.app = app
        self.socketio = socketio
        self.queue = None
        self.started = False
        # Chunks that arrived ahead of an earlier one of their command (Socket.IO runs
        # each event in its own task, so a pipelining agent's chunks may overtake each
        # other). They wait here, still unacknowledged, until the gap is filled.
        self.held = []

    def start(self):
        if not self.started:
            self.started = True
            self.queue = self.socketio.server.eio.create_queue()
            self.socketio.start_background_task(self._run)

    def store(self, chunk, timeout=STORE_TIMEOUT):
        """Store one chunk and wait until it is committed. Returns its outcome."""
        self.start()
        chunk.done = self.socketio.server.eio.create_event()
        chunk.deadline = time.monotonic() + timeout
        self.queue.put(chunk)
        if not chunk.done.wait(timeout):
            return "failed"
        return chunk.outcome

    def store_nowait(self, chunk):
        """Queue a server-made chunk (e.g. agent_lost) without waiting for it."""
        self.start()
        self.queue.put(chunk)

    def stop(self):
        if self.started:
            self.queue.put(None)

    def _run(self):
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            # Gather what arrives within the window: the cost of the commit is shared.
            self.socketio.sleep(self.app.config["WRITE_BATCH_WINDOW"])
            while len(batch) < self.app.config["WRITE_BATCH_MAX"] and not self.queue.empty():
                chunk = self.queue.get()
                if chunk is None:
                    self.queue.put(None)  # stop after this batch
                    break
                batch.append(chunk)
            batch = self._with_held(batch)
            try:
                self._write_batch(batch)
            except Exception:  # the writer must outlive any one batch
                log.exception("chunk writer failed on a batch")
                for chunk in batch:
                    if chunk.done is not None:
                        chunk.done.set()

    def _write_batch(self, batch):
        with self.app.app_context():
            try:
                results = write_chunks(batch)
            except SQLAlchemyError:
                db.session.rollback()
                if len(batch) > 1:
                    # Another process raced us on one command: retry one by one so
                    # only the conflicting chunk fails (its agent sends it again).
                    for chunk in batch:
                        self._write_batch([chunk])
                    return
                log.exception("could not store a chunk of command %s", batch[0].command_id)
                batch[0].outcome = "failed"
                results = []
            finally:
                db.session.remove()
        self._announce(results)
        for chunk in batch:
            if chunk.outcome == "held":
                self.held.append(chunk)
            elif chunk.done is not None:
                chunk.done.set()

    def _with_held(self, batch):
        """The new chunks plus the held ones still awaited, each command's in agent order."""
        now = time.monotonic()
        waiting = [chunk for chunk in self.held if chunk.deadline > now]  # others gave up
        self.held = []
        return sorted(waiting + batch, key=_agent_order)

    def _announce(self, results):
        """Fan the stored results out; a command's last result also announces its final state."""
        for message in results:
            room = f"session:{message['sessionId']}"
            self.socketio.emit(Events.COMMAND_RESULT, message, to=room, namespace=WEB_NAMESPACE)
            if message["status"] != "streaming":
                state = {
                    "type": "command_state",
                    "sessionId": message["sessionId"],
                    "commandId": message["commandId"],
                    "state": final_state(message.get("error")),
                }
                self.socketio.emit("command_state", state, to=room, namespace=WEB_NAMESPACE)


def final_state(error):
    code = (error or {}).get("code")
    return FINAL_STATE_BY_ERROR.get(code, "failed")


def write_chunks(batch):
    """Store a batch in one transaction; returns the command_result messages stored, by seq."""
    commands = {
        c.id: c
        for c in db.session.scalars(
            db.select(Command).filter(Command.id.in_({chunk.command_id for chunk in batch}))
        )
    }
    accepted = [chunk for chunk in batch if _accept(chunk, commands.get(chunk.command_id))]
    by_session = {}
    for chunk in accepted:
        by_session.setdefault(commands[chunk.command_id].session_id, []).append(chunk)
    rows = []
    for session_id, chunks in by_session.items():
        rows.extend(_number(session_id, chunks))
    if rows:
        db.session.execute(insert(Chunk), rows)
    db.session.commit()
    for chunk in accepted:
        chunk.outcome = "stored"
    return [
        result_message(
            r["session_id"],
            r["command_id"],
            r["seq"],
            r["response"],
            r["status"],
            r["event"],
            r["error"],
        )
        for r in rows
    ]


def _accept(chunk, command):
    """Decide whether a chunk is new; duplicates and late chunks are acknowledged, not stored."""
    if command is None:
        chunk.outcome = "ignored"
        return False
    if not command.active:
        chunk.outcome = "duplicate" if chunk.agent_seq else "ignored"
        return False
    if chunk.agent_seq is None:
        _finish(command, chunk.error)
        return True
    if chunk.agent_seq <= command.last_agent_seq:
        chunk.outcome = "duplicate"
        return False
    if chunk.agent_seq != command.last_agent_seq + 1:
        chunk.outcome = "held"  # an earlier chunk is still on its way
        return False
    command.last_agent_seq = chunk.agent_seq
    # A later chunk of the same command in this batch must follow this one.
    if chunk.is_complete or chunk.error:
        _finish(command, chunk.error)
    elif command.state in ("queued", "sent"):
        command.state = "running"
    return True


def _finish(command, error):
    code = (error or {}).get("code")
    command.state = final_state(error)
    command.error_code = code
    command.error_message = (error or {}).get("message")
    command.finished_at = utcnow()


def _number(session_id, chunks):
    """Take len(chunks) seqs from the session atomically and build the rows."""
    last = db.session.execute(
        update(ChatSession)
        .where(ChatSession.id == session_id)
        .values(last_seq=ChatSession.last_seq + len(chunks), updated_at=utcnow())
        .returning(ChatSession.last_seq)
    ).scalar_one()
    first = last - len(chunks) + 1
    rows = []
    for seq, chunk in enumerate(chunks, start=first):
        _remember_claude_session(session_id, chunk.event)
        _expire_permission(chunk.command_id, chunk.event)
        final = chunk.is_complete or chunk.error is not None or chunk.agent_seq is None
        status = ("error" if chunk.error else "complete") if final else "streaming"
        rows.append(
            {
                "session_id": session_id,
                "seq": seq,
                "command_id": chunk.command_id,
                "response": chunk.data,
                "status": status,
                "event": chunk.event,
                "error": chunk.error,
                "created_at": utcnow(),
            }
        )
    return rows


def _expire_permission(command_id, event):
    """A permission the agent gave up on (timeout, stop) is no longer shown to anyone.

    Only a request of the same command: an agent cannot expire another agent's request."""
    if event and event.get("type") == "permission_expired" and isinstance(event.get("request_id"), str):
        db.session.execute(
            update(PermissionRequest)
            .where(
                PermissionRequest.id == event["request_id"],
                PermissionRequest.command_id == command_id,
                PermissionRequest.decision.is_(None),
            )
            .values(decision="expired", decided_at=utcnow())
        )


def _remember_claude_session(session_id, event):
    """Claude Code's own session id (from its init message) is what a later resume needs."""
    if event and event.get("type") == "system" and event.get("subtype") == "init":
        claude_id = event.get("session_id")
        if isinstance(claude_id, str) and claude_id:
            db.session.execute(
                update(ChatSession)
                .where(ChatSession.id == session_id)
                .values(claude_session_id=claude_id[:64])
            )
