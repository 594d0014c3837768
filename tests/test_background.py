"""The background services outlive a database connection that dies under them.

PostgreSQL ends a connection when it restarts, fails over or is told to
(`pg_terminate_backend`); the job or event that was using it fails, and the
next one must run on a fresh connection. Ending the dead session used to raise
out of the loop and stop the scheduler (presence, catch-up, token watch) or the
notifier for good.
"""

import pytest
from sqlalchemy import text

from app import current_services, db, notify, relay, storage
from app.services import Job
from app.storage import ChunkIn
from protocol import ProtocolError
from tests.conftest import make_command
from tests.databases import on_postgresql
from tests.harness import wait_until

# SQLite has no connection to lose: these run in the PostgreSQL pass of `make test` (or with
# TETHER_TEST_DB=postgresql), and the unit lane needs no database server.
pytestmark = pytest.mark.skipif(not on_postgresql(), reason="needs PostgreSQL (TETHER_TEST_DB=postgresql)")


def lose_the_connection(app=None):
    """Have PostgreSQL end this session's connection while its transaction is open, as a
    restart would between two statements."""
    pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
    with db.engine.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


def one():
    return db.session.execute(text("SELECT 1")).scalar()


def test_a_job_runs_again_after_the_database_ended_its_connection(app):
    scheduler = current_services(app).scheduler
    scheduler.run_now(Job("dies", lose_the_connection, every=1))
    answers = []
    scheduler.run_now(Job("next", lambda app: answers.append(one()), every=1))
    assert answers == [1]


def test_the_notifier_takes_the_next_event_after_the_database_ended_its_connection(app, monkeypatch):
    answers = []

    def handle(event):
        if event["type"] == "die":
            lose_the_connection()
        else:
            answers.append(one())

    monkeypatch.setattr(notify, "handle", handle)
    notifier = current_services(app).notifier
    notifier.put({"type": "die"})
    notifier.put({"type": "next"})
    wait_until(lambda: answers == [1], message="the event after the lost connection")


def test_the_writer_stores_the_next_chunk_after_the_database_ended_its_connection(app, seed, monkeypatch):
    _, command_id = make_command(app, seed)
    write_chunks = storage.write_chunks
    lost = []

    def write_on_a_lost_connection(batch):
        if not lost:
            lost.append(True)
            lose_the_connection()
        return write_chunks(batch)

    monkeypatch.setattr(storage, "write_chunks", write_on_a_lost_connection)
    writer = current_services(app).writer
    assert writer.store(ChunkIn(command_id, 1, data="a")) == "failed"  # the agent sends it again
    assert writer.store(ChunkIn(command_id, 1, data="a")) == "stored"


def test_an_event_is_answered_when_the_database_ended_its_connection(app, seed, sockets, monkeypatch):
    def refuse_on_a_lost_connection(user_id, message):
        lose_the_connection()
        raise ProtocolError("not_found", "nothing is running in this session")

    monkeypatch.setattr(relay, "cancel_command", refuse_on_a_lost_connection)
    browser = sockets.browser(seed)
    reply = browser.call("cancel_command", sessionId="s1")
    assert reply["error"]["code"] == "not_found"
    monkeypatch.undo()
    assert browser.call("cancel_command", sessionId="s1")["error"]["code"] == "not_found"
