"""A command's state, moved in one place.

Every change of `Command.state` goes through `move`, which checks the move
against protocol/states.py and announces it (`command_state`) once the
transaction commits. The page applies the same table (static/js/generated).
"""

import logging

from app import db, notify, outbound
from app.models import Command, utcnow
from protocol import messages
from protocol.states import ACTIVE_STATES, can_move, final_state

log = logging.getLogger("tether.commands")

# The one final error after which a command's own late output may still land.
REOPENABLE_ERROR = "agent_lost"


def move(command, state, text=None):
    """Move `command` (loaded in this session) to `state` if the table allows it; True if it moved.

    The change is written by the caller's commit, and announced after it.
    """
    if not can_move(command.state, state):
        return False
    if command.state == "failed" and command.error_code != REOPENABLE_ERROR:
        return False
    command.state = state
    if state in ACTIVE_STATES:
        command.error_code = command.error_message = command.finished_at = None
    message = messages.command_state(command.session_id, command.id, state, text=text)
    outbound.after_commit(db.session, outbound.to_session, message)
    notify.command_moved(command)
    return True


def move_by_id(command_id, state, only_from=None):
    """Move a command known by id, locking its row so that two processes never both move it.

    `only_from` narrows the states it may move from (e.g. only a sent command becomes running
    on the agent's acknowledgement). Commits.
    """
    command = db.session.get(Command, command_id, with_for_update=True, populate_existing=True)
    moved = command is not None and (only_from is None or command.state in only_from) and move(command, state)
    db.session.commit()
    return moved


def finish(command, error=None):
    """A command's last result was stored: move it to its final state."""
    if move(command, final_state(error)):
        command.error_code = (error or {}).get("code")
        command.error_message = (error or {}).get("message")
        command.finished_at = utcnow()


def reopens(command):
    """True if a command that was given up may take its agent's late output after all."""
    return command.state == "failed" and command.error_code == REOPENABLE_ERROR


def active_in_session(session_id):
    return db.session.scalar(
        db.select(Command).filter(Command.session_id == session_id, Command.state.in_(ACTIVE_STATES))
    )


def count_active(**filters):
    return db.session.scalar(
        db.select(db.func.count(Command.id)).filter_by(**filters).filter(Command.state.in_(ACTIVE_STATES))
    )
