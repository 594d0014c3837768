"""wsgi.py's production entry, with the knobs the benchmarks need and nothing else changed.

    TETHER_ASYNC_MODE=eventlet ... python bench/tether_server.py [--seed DIR] [--max-size N]
        [--agent-rate R] [--no-storage]

Same code path as `python wsgi.py`: monkey-patch, create_app(ProductionConfig),
socketio.run(). The knobs:

--seed DIR      create a user, an agent and a project in DIR first; prints `SEED {json}`.
--history N:C   with --seed: also a session of N answered turns of about C characters each
                (bench/history.py); its id is `history_session_id` in the SEED line.
--max-size N    passed to socketio.run, which hands it to eventlet.wsgi.server: the number
                of connections eventlet serves at once. Like wsgi.py, the default is
                TETHER_MAX_CONNECTIONS or 20,000 (eventlet's own default is 1,024: pass
                --max-size 1024 to see it). gevent's pywsgi has no such cap.
--agent-rate R  chunks per second an agent socket may send (Config's bucket is
                RATE_LIMIT_PER_SECOND x 50 = 1,000/s, burst 3,000); lifted to measure the
                relay in messages rather than the rate limiter.
--sqlite-wal    SQLite in WAL mode with synchronous=NORMAL (a commit no longer waits
                for fsync; the write-ahead log is synced at checkpoints).
--profile FILE  run under cProfile for --profile-seconds (20) and write its stats to FILE.
--no-storage    a relay that stores nothing: chunks are numbered in memory and fanned out
                as usual, only the final state of each command is written. Every browser
                must subscribe before the stream starts (there is no history to replay).
"""

import argparse
import os
import sys

ARGS = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ARGS.add_argument("--seed", metavar="DIR")
ARGS.add_argument("--history", metavar="TURNS:CHARS")
ARGS.add_argument("--max-size", type=int)
ARGS.add_argument("--agent-rate", type=float)
ARGS.add_argument("--no-storage", action="store_true")
ARGS.add_argument("--sqlite-wal", action="store_true")
ARGS.add_argument(
    "--profile", metavar="FILE", help="cProfile the server; stats written after --profile-seconds"
)
ARGS.add_argument("--profile-seconds", type=float, default=20.0)
OPTIONS = ARGS.parse_args()
ASYNC_MODE = os.environ.get("TETHER_ASYNC_MODE", "gevent")

# Monkey-patching must come before anything else imports socket or threading.
if ASYNC_MODE == "eventlet":
    import eventlet

    eventlet.monkey_patch()
else:
    from gevent import monkey

    monkey.patch_all()

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import json  # noqa: E402

from app import create_app, socketio  # noqa: E402
from config import ProductionConfig  # noqa: E402

USERNAME, PASSWORD = "bench", "bench-password"


class BenchConfig(ProductionConfig):
    if OPTIONS.agent_rate:
        # The agent's bucket is 50x the browsers'; browsers get looser too, which no benchmark minds.
        RATE_LIMIT_PER_SECOND = OPTIONS.agent_rate / 50
        RATE_LIMIT_BURST = int(OPTIONS.agent_rate / 50 * 3)


def seed(app, project_dir):
    from app.accounts import create_agent, create_project, create_user

    with app.app_context():
        user = create_user(USERNAME, PASSWORD)
        agent, token = create_agent(user, "bench-agent")
        project = create_project(user, agent, "bench", project_dir)
        return {
            "username": USERNAME,
            "password": PASSWORD,
            "user_id": user.id,
            "token": token,
            "agent_id": agent.id,
            "project_id": project.id,
            "project_dir": project_dir,
        }


def store_nothing():
    """Replace the chunk writer's storage with in-memory numbering (see --no-storage)."""
    from app import commands as command_states
    from app import db, outbound, storage
    from app.models import Command
    from protocol.messages import command_result

    commands = {}  # command id -> [session id, last agent seq]
    sessions = {}  # session id -> last seq

    def write_chunks(batch):
        results = []
        for chunk in batch:
            known = commands.get(chunk.command_id)
            if known is None:
                command = db.session.get(Command, chunk.command_id)
                if command is None:
                    chunk.outcome = "ignored"
                    continue
                known = commands[chunk.command_id] = [command.session_id, 0]
            session_id, last = known
            if chunk.agent_seq is not None and chunk.agent_seq <= last:
                chunk.outcome = "duplicate"
                continue
            known[1] = chunk.agent_seq or last
            seq = sessions[session_id] = sessions.get(session_id, 0) + 1
            final = chunk.is_complete or chunk.error is not None or chunk.agent_seq is None
            if final:  # the one write per command: its final state
                command = db.session.get(Command, chunk.command_id)
                command_states.finish(command, chunk.error)
            status = ("error" if chunk.error else "complete") if final else "streaming"
            result = command_result(
                session_id, chunk.command_id, seq, chunk.data, status, chunk.event, chunk.error
            )
            outbound.after_commit(db.session, outbound.result_to_session, result)
            results.append(result)
            chunk.outcome = "stored"
        db.session.commit()
        return results

    storage.write_chunks = write_chunks


def sqlite_wal(app):
    """Every new SQLite connection: WAL journal, fsync at checkpoints only."""
    from sqlalchemy import event

    from app import db

    def pragmas(connection, record):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    with app.app_context():
        event.listen(db.engine, "connect", pragmas)
        db.engine.dispose()  # connections opened before the listener get replaced


def profile(path, seconds):
    """Profile the whole process (every greenlet) for `seconds`, then write the stats."""
    import cProfile

    profiler = cProfile.Profile()

    def stop():
        socketio.sleep(seconds)
        profiler.disable()
        profiler.dump_stats(path)

    socketio.start_background_task(stop)
    profiler.enable()


def main():
    BenchConfig.check()
    app = create_app(BenchConfig, async_mode=ASYNC_MODE)
    if OPTIONS.profile:
        profile(OPTIONS.profile, OPTIONS.profile_seconds)
    if OPTIONS.seed:
        seeded = seed(app, OPTIONS.seed)
        if OPTIONS.history:
            from bench.history import make_history

            turns, chars = (int(x) for x in OPTIONS.history.split(":"))
            seeded["history_session_id"] = make_history(
                app, seeded["project_id"], seeded["user_id"], turns, chars
            )
        print("SEED " + json.dumps(seeded), flush=True)
    if OPTIONS.no_storage:
        store_nothing()
    if OPTIONS.sqlite_wal:
        sqlite_wal(app)
    host = os.environ.get("TETHER_HOST", "127.0.0.1")
    port = int(os.environ.get("TETHER_PORT", "5000"))
    extra = {}
    if ASYNC_MODE == "eventlet":
        # As wsgi.py does: eventlet.wsgi serves at most 1,024 connections at once by default.
        extra["max_size"] = OPTIONS.max_size or int(os.environ.get("TETHER_MAX_CONNECTIONS", "20000"))
    print(f"SERVING http://{host}:{port} ({ASYNC_MODE})", flush=True)
    socketio.run(app, host=host, port=port, log_output=False, **extra)


if __name__ == "__main__":
    main()
