"""GET /api/sessions/<id>/turns: a session's turns with their results, a page at a time."""

from app import db
from app.main import routes
from app.models import ChatSession, Command
from app.storage import ChunkIn, write_chunks
from tests.test_pages import log_in, other  # noqa: F401, F811 - `other` is a fixture


def make_answered_session(app, seed, answers):
    """A session with one command per answer, stored through the chunk writer.

    Each answer is a list of ChunkIn keyword dicts (agent seqs are filled in).
    Returns (session id, command ids)."""
    with app.app_context():
        session = ChatSession(project_id=seed.project_id, title="Answers")
        db.session.add(session)
        db.session.flush()
        ids = []
        for number, chunks in enumerate(answers):
            command = Command(
                session_id=session.id,
                user_id=seed.user_id,
                agent_id=seed.agent_id,
                text=f"prompt {number}",
                working_directory=seed.project_path,
                state="sent",
            )
            db.session.add(command)
            db.session.commit()
            ids.append(command.id)
            write_chunks(
                [ChunkIn(command.id, agent_seq, **chunk) for agent_seq, chunk in enumerate(chunks, start=1)]
            )
        return session.id, ids


def text_answer(*pieces, error=None):
    chunks = [{"data": piece} for piece in pieces]
    chunks[-1].update(is_complete=error is None, error=error)
    return chunks


def get_turns(client, session_id, **query):
    reply = client.get(f"/api/sessions/{session_id}/turns", query_string=query)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.mimetype == "application/json"
    return reply.get_json()


def answer_text(turn):
    return "".join(result["response"] for result in turn["results"])


def test_last_turns_come_whole_with_the_seq_to_subscribe_from(app, client, seed):
    tool = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
    answers = [
        text_answer("Hello", ", ", "world"),
        [{"data": "Let me look. "}, {"event": tool}, {"data": "Done", "is_complete": True}],
        text_answer("partial", error={"code": "agent_lost", "message": "the agent went away"}),
    ]
    session_id, ids = make_answered_session(app, seed, answers)
    page = get_turns(log_in(client, seed), session_id)

    assert page["sessionId"] == session_id
    assert page["lastSeq"] == 7  # one seq per stored chunk: 3 + 3 + 1
    assert page["older"] is False
    assert [t["commandId"] for t in page["turns"]] == ids
    assert [t["state"] for t in page["turns"]] == ["done", "done", "failed"]
    assert [answer_text(t) for t in page["turns"]] == ["Hello, world", "Let me look. Done", "partial"]
    assert page["turns"][0]["text"] == "prompt 0"
    assert page["turns"][2]["error"] == {"code": "agent_lost", "message": "the agent went away"}
    assert page["turns"][0]["error"] is None
    # Plain text runs are merged into one result carrying the last seq; events stay apart.
    first = page["turns"][0]["results"]
    assert [r["status"] for r in first] == ["streaming", "complete"]
    assert first[0]["response"] == "Hello, " and first[0]["seq"] == 2
    assert [r.get("event", {}).get("type") for r in page["turns"][1]["results"]] == [None, "tool_use", None]
    seqs = [r["seq"] for t in page["turns"] for r in t["results"]]
    assert seqs == sorted(seqs) and seqs[-1] == page["lastSeq"]


def test_older_pages_come_before_a_command_until_none_is_left(app, client, seed):
    session_id, ids = make_answered_session(app, seed, [text_answer(f"answer {n}") for n in range(5)])
    log_in(client, seed)
    pages = [get_turns(client, session_id, limit=2)]
    while pages[-1]["older"]:
        pages.append(get_turns(client, session_id, limit=2, before=pages[-1]["turns"][0]["commandId"]))
    assert [[t["commandId"] for t in page["turns"]] for page in pages] == [ids[3:], ids[1:3], ids[:1]]
    assert [answer_text(t) for page in reversed(pages) for t in page["turns"]] == [
        f"answer {n}" for n in range(5)
    ]


def test_a_page_holds_as_much_text_as_its_budget_and_at_least_one_turn(app, client, seed, monkeypatch):
    session_id, ids = make_answered_session(app, seed, [text_answer("x" * 40) for _ in range(4)])
    monkeypatch.setattr(routes, "TURNS_PAGE_CHARS", 100)
    log_in(client, seed)
    page = get_turns(client, session_id)
    assert [t["commandId"] for t in page["turns"]] == ids[2:]
    assert page["older"] is True
    monkeypatch.setattr(routes, "TURNS_PAGE_CHARS", 10)
    page = get_turns(client, session_id)
    assert [t["commandId"] for t in page["turns"]] == ids[3:]


def test_states_alone_without_results(app, client, seed):
    session_id, ids = make_answered_session(app, seed, [text_answer("one"), text_answer("two")])
    page = get_turns(log_in(client, seed), session_id, results=0, limit=5)
    assert [(t["commandId"], t["state"]) for t in page["turns"]] == [(ids[0], "done"), (ids[1], "done")]
    assert all("results" not in t for t in page["turns"])


def test_turns_are_owner_only_and_bad_queries_are_refused(app, client, seed, other):  # noqa: F811
    bobs_session, bobs_ids = make_answered_session(app, other, [text_answer("bob's secret")])
    session_id, _ = make_answered_session(app, seed, [text_answer("mine")])
    log_in(client, seed)
    reply = client.get(f"/api/sessions/{bobs_session}/turns")
    assert reply.status_code == 404
    assert "secret" not in reply.get_data(as_text=True)
    assert client.get(f"/api/sessions/{session_id}/turns?before={bobs_ids[0]}").status_code == 404
    assert client.get("/api/sessions/no-such-session/turns").status_code == 404
    reply = client.get(f"/api/sessions/{session_id}/turns?limit=many")
    assert reply.status_code == 400
    assert reply.get_json()["error"]["code"] == "invalid_message"


def test_turns_need_a_login(app, client, seed):
    session_id, _ = make_answered_session(app, seed, [text_answer("private")])
    reply = client.get(f"/api/sessions/{session_id}/turns")
    assert reply.status_code in (302, 401)
    assert "private" not in reply.get_data(as_text=True)
