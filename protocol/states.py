"""A command's life: its states and the moves allowed between them.

The server moves commands only through `app.commands.move`, which checks this
table; the page applies `command_state` events and results through the same
table (static/js/generated/protocol.js is generated from this module).
"""

ACTIVE_STATES = ("queued", "sent", "running")
FINAL_STATES = ("done", "failed", "stopped")
COMMAND_STATES = ACTIVE_STATES + FINAL_STATES

# Forward only, except one way back: a command given up as `agent_lost` (a failed
# command) reopens when its agent's late output arrives after all.
TRANSITIONS = {
    "queued": ("sent", "running", "done", "failed", "stopped"),
    "sent": ("running", "done", "failed", "stopped"),
    "running": ("done", "failed", "stopped"),
    "done": (),
    "failed": ("running", "done", "stopped"),
    "stopped": (),
}

# A command's final state from the code of its final error (no error: done).
FINAL_STATE_BY_ERROR = {None: "done", "interrupted": "stopped"}


def final_state(error):
    """The final state a command's last result gives it."""
    return FINAL_STATE_BY_ERROR.get((error or {}).get("code"), "failed")


def can_move(current, new):
    return new in TRANSITIONS.get(current, ())
