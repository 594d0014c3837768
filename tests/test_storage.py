"""The chunk writer: group commit, per-session seq, duplicates, and chunks that overtake each other."""

import threading

from app import current_services, db
from app.models import Chunk, Command
from app.storage import ChunkIn
from tests.conftest import make_command


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
    writer = current_services(app).writer
    assert writer.store(ChunkIn(command_id, 1, data="a")) == "stored"
    assert writer.store(ChunkIn(command_id, 2, data="b", is_complete=True)) == "stored"
    assert writer.store(ChunkIn(command_id, 2, data="b", is_complete=True)) == "duplicate"
    assert stored(app, command_id) == [(1, "a", "streaming"), (2, "b", "complete")]
    with app.app_context():
        assert db.session.get(Command, command_id).state == "done"


def test_a_chunk_that_overtakes_an_earlier_one_waits_for_it(app, seed):
    _, command_id = make_command(app, seed)
    writer = current_services(app).writer
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
    writer = current_services(app).writer
    stopped = {"code": "interrupted", "message": "Stopped while the agent was offline."}
    assert writer.store(ChunkIn(command_id, None, error=stopped)) == "stored"
    assert writer.store(ChunkIn(command_id, None, error=stopped)) == "ignored"
    assert writer.store(ChunkIn(command_id, 1, data="late")) == "duplicate"
    assert stored(app, command_id) == [(1, "", "error")]
    with app.app_context():
        assert db.session.get(Command, command_id).state == "stopped"


def test_late_output_of_a_command_given_up_as_agent_lost_still_lands(app, seed):
    """The agent froze, the server gave up on it, then the agent woke and finished its answer."""
    _, command_id = make_command(app, seed)
    writer = current_services(app).writer
    assert writer.store(ChunkIn(command_id, 1, data="before ")) == "stored"
    lost = {"code": "agent_lost", "message": "gone"}
    assert writer.store(ChunkIn(command_id, None, error=lost)) == "stored"
    assert writer.store(ChunkIn(command_id, 3, data="overtaking", is_complete=True), timeout=0.2) == "failed"
    assert writer.store(ChunkIn(command_id, 1, data="before ")) == "duplicate"
    assert writer.store(ChunkIn(command_id, 2, data="after")) == "stored"
    with app.app_context():
        assert db.session.get(Command, command_id).state == "running"
    assert writer.store(ChunkIn(command_id, 3, data="", is_complete=True)) == "stored"
    assert stored(app, command_id) == [
        (1, "before ", "streaming"),
        (2, "", "error"),
        (3, "after", "streaming"),
        (4, "", "complete"),
    ]
    with app.app_context():
        command = db.session.get(Command, command_id)
        assert (command.state, command.error_code) == ("done", None)
