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

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from app import commands, current_services, db, notify, outbound, socketio
from app.background import QueueTasks, end_session
from app.models import ChatSession, Chunk, Command, PermissionRequest, utcnow
from protocol import messages
from protocol.states import ACTIVE_STATES

log = logging.getLogger("tether.storage")
STORE_TIMEOUT = 15.0  # seconds an agent's chunk may wait to be stored before it is refused


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


class ChunkWriter(QueueTasks):
    """The process's single writer: batches chunks, stores them, then fans them out."""

    def __init__(self, app):
        super().__init__(app)
        # Chunks that arrived ahead of an earlier one of their command (Socket.IO runs
        # each event in its own task, so a pipelining agent's chunks may overtake each
        # other). They wait here, still unacknowledged, until the gap is filled.
        self.held = []

    def store(self, chunk, timeout=STORE_TIMEOUT):
        """Store one chunk and wait until it is committed. Returns its outcome."""
        chunk.done = socketio.server.eio.create_event()
        chunk.deadline = time.monotonic() + timeout
        self.put(chunk)
        if not chunk.done.wait(timeout):
            log.warning(
                "chunk %s of command %s not stored within %.0f s", chunk.agent_seq, chunk.command_id, timeout
            )
            return "failed"
        return chunk.outcome

    def store_nowait(self, chunk):
        """Queue a server-made chunk (e.g. agent_lost) without waiting for it."""
        self.put(chunk)

    def _run(self):
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            # Gather what arrives within the window: the cost of the commit is shared.
            socketio.sleep(self.app.config["WRITE_BATCH_WINDOW"])
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
                write_chunks(batch)
            except SQLAlchemyError:
                end_session()  # rolls back; a connection lost meanwhile is replaced
                if len(batch) > 1:
                    # Another process raced us on one command: retry one by one so
                    # only the conflicting chunk fails (its agent sends it again).
                    for chunk in batch:
                        self._write_batch([chunk])
                    return
                log.exception("could not store a chunk of command %s", batch[0].command_id)
                batch[0].outcome = "failed"
            finally:
                end_session()
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


@dataclass
class CommandRow:
    """What the writer reads and changes of a command: plain values, read and written with
    SQLAlchemy Core (the ORM's identity map and change tracking cost more than the rest of a
    batch). `commands.move` and `commands.finish` work on it as on a model."""

    id: str
    session_id: str
    state: str
    last_agent_seq: int
    error_code: str | None
    error_message: str | None = None
    finished_at: object = None

    @property
    def active(self):
        return self.state in ACTIVE_STATES


COMMANDS = Command.__table__
CHUNKS = Chunk.__table__
SESSIONS = ChatSession.__table__
# Statements built once: building them per batch cost as much as running them.
_READ = (
    select(*[COMMANDS.c[name] for name in ("id", "session_id", "state", "last_agent_seq", "error_code")])
    .where(COMMANDS.c.id.in_(bindparam("ids", expanding=True)))
    # Another process's writer or an acknowledgement may move the same commands: lock them.
    .with_for_update()
)
_TAKE_SEQS = (
    update(SESSIONS)
    .where(SESSIONS.c.id == bindparam("session_id"))
    .values(last_seq=SESSIONS.c.last_seq + bindparam("count"), updated_at=bindparam("now"))
    .returning(SESSIONS.c.last_seq)
)
_INSERT = insert(CHUNKS)
_SAVE = (
    update(COMMANDS)
    .where(COMMANDS.c.id == bindparam("command_id"))
    .values(
        state=bindparam("state"),
        last_agent_seq=bindparam("last_agent_seq"),
        error_code=bindparam("error_code"),
        error_message=bindparam("error_message"),
        finished_at=bindparam("finished_at"),
    )
)


def write_chunks(batch):
    """Store a batch in one transaction; returns the command_result messages stored, by seq.

    After the commit, the results go out first and then the commands' new states,
    so a browser that sees a command `done` already holds all of its text.
    """
    connection = db.session.connection()
    ids = list({chunk.command_id for chunk in batch})
    by_id = {row.id: CommandRow(*row) for row in connection.execute(_READ, {"ids": ids})}
    closing = set()
    accepted = [chunk for chunk in batch if _accept(chunk, by_id.get(chunk.command_id), closing)]
    by_session = {}
    for chunk in accepted:
        by_session.setdefault(by_id[chunk.command_id].session_id, []).append(chunk)
    rows = [
        row for session_id, chunks in by_session.items() for row in _number(connection, session_id, chunks)
    ]
    if rows:
        connection.execute(_INSERT, rows)
    results = [
        messages.command_result(
            r["session_id"], r["command_id"], r["seq"], r["response"], r["status"], r["event"], r["error"]
        )
        for r in rows
    ]
    for message in results:
        outbound.after_commit(db.session, outbound.result_to_session, message)
    for chunk in accepted:
        _move_command(by_id[chunk.command_id], chunk)
    moved = {chunk.command_id for chunk in accepted}
    if moved:
        connection.execute(_SAVE, [_saved(by_id[command_id]) for command_id in moved])
    db.session.commit()
    for chunk in accepted:
        chunk.outcome = "stored"
    return results


def _saved(command):
    return {
        "command_id": command.id,
        "state": command.state,
        "last_agent_seq": command.last_agent_seq,
        "error_code": command.error_code,
        "error_message": command.error_message,
        "finished_at": command.finished_at,
    }


def _accept(chunk, command, closing):
    """Decide whether a chunk is new; duplicates and late chunks are acknowledged, not stored.

    `closing` holds the commands whose last result is already in this batch.
    """
    if command is None:
        chunk.outcome = "ignored"
        return False
    if command.id in closing:
        chunk.outcome = "ignored" if chunk.agent_seq is None else "duplicate"
        return False
    if chunk.agent_seq is None:  # the server closes the command
        if not command.active:
            chunk.outcome = "ignored"
            return False
        closing.add(command.id)
        return True
    # A command given up as agent_lost still takes its agent's late output, in order.
    if (not command.active and not commands.reopens(command)) or chunk.agent_seq <= command.last_agent_seq:
        chunk.outcome = "duplicate"
        return False
    if chunk.agent_seq != command.last_agent_seq + 1:
        chunk.outcome = "held"  # an earlier chunk is still on its way
        return False
    command.last_agent_seq = chunk.agent_seq
    if chunk.is_complete or chunk.error:
        closing.add(command.id)
    return True


def _move_command(command, chunk):
    if chunk.agent_seq is None or chunk.is_complete or chunk.error:
        commands.finish(command, chunk.error)
    else:
        commands.move(command, "running")


def _number(connection, session_id, chunks):
    """Take len(chunks) seqs from the session atomically and build the rows."""
    taken = {"session_id": session_id, "count": len(chunks), "now": utcnow()}
    last = connection.execute(_TAKE_SEQS, taken).scalar_one()
    first = last - len(chunks) + 1
    rows = []
    for seq, chunk in enumerate(chunks, start=first):
        _remember_claude_session(connection, session_id, chunk.event)
        _expire_permission(connection, session_id, chunk.command_id, chunk.event)
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


def _expire_permission(connection, session_id, command_id, event):
    """A permission the agent gave up on (timeout, stop) is no longer shown to anyone.

    Only a request of the same command: an agent cannot expire another agent's request."""
    if event and event.get("type") == "permission_expired" and isinstance(event.get("request_id"), str):
        requests = PermissionRequest.__table__
        connection.execute(
            update(requests)
            .where(
                requests.c.id == event["request_id"],
                requests.c.command_id == command_id,
                requests.c.decision.is_(None),
            )
            .values(decision="expired", decided_at=utcnow())
        )
        notify.session_changed(session_id)


def _remember_claude_session(connection, session_id, event):
    """Claude Code's own session id (from its init message) is what a later resume needs."""
    if event and event.get("type") == "system" and event.get("subtype") == "init":
        claude_id = event.get("session_id")
        if isinstance(claude_id, str) and claude_id:
            connection.execute(
                update(SESSIONS).where(SESSIONS.c.id == session_id).values(claude_session_id=claude_id[:64])
            )


def close_command(command_id, code, message):
    """Close a command from the server's side (agent lost, refused, stopped while offline).

    The closing result goes through the chunk writer like any other, so it takes the
    session's next seq and reaches every subscriber in order.
    """

    current_services().writer.store_nowait(
        ChunkIn(command_id, None, error={"code": code, "message": message})
    )
