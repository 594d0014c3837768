"""A long session made up for the page benchmark: N turns of Markdown answers, stored the way the
relay stores a streamed answer (the chunk writer, about 500 characters a chunk, then a closing
`result` event)."""

from datetime import timedelta

from app import db
from app.models import ChatSession, Command, Project, utcnow
from app.storage import ChunkIn, write_chunks

CHUNK_CHARS = 500
COMMANDS_PER_BATCH = 25


def end_marker(number):
    """The last words of answer `number`: the page has the whole turn once they are on screen."""
    return f"End of answer {number}."


def answer_text(number, size):
    """A Markdown answer of about `size` characters: paragraphs, a list, code and a table."""
    paragraph = (
        f"Turn {number}: the slow part is **`load_config()`**, which reads every file under "
        "`settings/` on each request and parses them one by one. Caching the parsed settings once "
        "per process and invalidating them on `SIGHUP` removes that cost.\n\n"
    )
    items = "".join(f"{i}. Item {i} of turn {number}, with `code` and *emphasis*.\n" for i in range(1, 6))
    code = (
        "```python\n@lru_cache\ndef settings():\n"
        '    return load_settings(os.environ.get("APP_ENV", "production"))\n```\n\n'
    )
    table = "| file | parse time |\n|---|---|\n" + "".join(f"| f{i}.toml | {i * 7} ms |\n" for i in range(5))
    blocks = [paragraph, items + "\n", paragraph, code, table + "\n"]
    parts = [f"## Step {number}\n\n"]
    total = len(parts[0])
    while total < size:
        block = blocks[len(parts) % len(blocks)]
        parts.append(block)
        total += len(block)
    parts.append(end_marker(number))
    return "".join(parts)


def _chunks(command_id, text):
    pieces = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]
    chunks = [ChunkIn(command_id, seq, data=piece) for seq, piece in enumerate(pieces, start=1)]
    result = {"type": "result", "subtype": "success", "duration_ms": 1234, "num_turns": 1, "is_error": False}
    chunks.append(ChunkIn(command_id, len(pieces) + 1, event=result, is_complete=True))
    return chunks


def make_history(app, project_id, user_id, turns, size):
    """A session of the project with `turns` answered commands; returns its id."""
    with app.app_context():
        project = db.session.get(Project, project_id)
        session = ChatSession(project_id=project.id, title=f"A long session ({turns} turns)")
        db.session.add(session)
        db.session.commit()
        start = utcnow() - timedelta(days=1)
        for first in range(0, turns, COMMANDS_PER_BATCH):
            numbers = range(first, min(turns, first + COMMANDS_PER_BATCH))
            commands = [
                Command(
                    session_id=session.id,
                    user_id=user_id,
                    agent_id=project.agent_id,
                    text=f"Question {number}: where does the time go?",
                    working_directory=project.path,
                    state="sent",
                    created_at=start + timedelta(seconds=number),
                )
                for number in numbers
            ]
            db.session.add_all(commands)
            db.session.commit()
            batch = []
            for number, command in zip(numbers, commands, strict=True):
                batch += _chunks(command.id, answer_text(number, size))
            write_chunks(batch)
        return session.id
