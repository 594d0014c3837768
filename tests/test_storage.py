"""The chunk writer: group commit, per-session seq, duplicates, and chunks that overtake each other."""

import threading

from app import db
from app.models import ChatSession, Chunk, Command
from app.storage import ChunkIn


def make_command(app, seed):
    with app.app_context():
        session = ChatSession(project_id=seed.project_id, title="t")
        db.session.add(session)
        db.session.flush()
        command = Command(
            session_id=session.id,
            user_id=seed.user_id,
            agent_id=seed.agent_id,
            text="x",
            working_directory=seed.project_path,
            state="running",
        )
        db.session.add(command)
        db.session.commit()
        return session.id, command.id


def stored(app, command_id):
    with app.app_context():
        rows = db.session.scalars(db.select(Chunk).filter_by(command_id=command_id).order_by(Chunk.seq)).all()
        return [(row.seq, row.response, row.status) for row in rows]


def store_in_thread(writer, chunk, outcomes):
    thread = threading.Thread(target=lambda: outcomes.append((chunk.agent_seq, writer.store(chunk))))
    thread.start()
    return thread


def test_chunks_are_numbered_per_session_and_duplicates_are_acknowledged_not_stored(app, seed):
    _, command_id = make_command(app, seed)
    writer = app.extensions["tether_writer"]
    assert writer.store(ChunkIn(command_id, 1, data="a")) == "stored"
    assert writer.store(ChunkIn(command_id, 2, data="b", is_complete=True)) == "stored"
    assert writer.store(ChunkIn(command_id, 2, data="b", is_complete=True)) == "duplicate"
    assert stored(app, command_id) == [(1, "a", "streaming"), (2, "b", "complete")]
    with app.app_context():
        assert db.session.get(Command, command_id).state == "done"


def test_a_chunk_that_overtakes_an_earlier_one_waits_for_it(app, seed):
    _, command_id = make_command(app, seed)
    writer = app.extensions["tether_writer"]
    outcomes = []
    later = store_in_thread(writer, ChunkIn(command_id, 2, data="second"), outcomes)
    later.join(0.5)
    assert later.is_alive(), "the early chunk must wait, unacknowledged, for the one before it"
    earlier = store_in_thread(writer, ChunkIn(command_id, 1, data="first"), outcomes)
    for thread in (earlier, later):
        thread.join(10)
    assert sorted(outcomes) == [(1, "stored"), (2, "stored")]
    assert stored(app, command_id) == [(1, "first", "streaming"), (2, "second", "streaming")]


def test_a_server_made_end_closes_the_command_once(app, seed):
    _, command_id = make_command(app, seed)
    writer = app.extensions["tether_writer"]
    lost = {"code": "agent_lost", "message": "gone"}
    assert writer.store(ChunkIn(command_id, None, error=lost)) == "stored"
    assert writer.store(ChunkIn(command_id, 1, data="late")) == "duplicate"
    assert stored(app, command_id) == [(1, "", "error")]
    with app.app_context():
        assert db.session.get(Command, command_id).state == "failed"
