"""Pairing codes: a short code, used once within minutes, that an agent trades for its token.

`flask agents pair USER AGENT` or the dashboard issues one; `tether-agent --pair CODE`
posts it to `/agent/pair` and gets the agent's token, which it keeps in its state
directory. So the long-lived token never has to be copied by hand, and never shows
in a shell history or a process list.

- A code is 10 characters of a 30-letter alphabet without look-alikes (0/O, 1/I/L, U):
  about 49 bits, shown as `ABCDE-FGHJK`. Dashes, spaces and case do not matter.
- Only its SHA-256 is stored, like agent tokens. 49 bits cannot be searched within the
  code's 10 minutes even by someone who reads the database.
- Used once: the trade marks it used in the same UPDATE that checks it is unused, so
  two simultaneous trades (in two server processes) cannot both succeed.
- Issuing a code for an agent withdraws its earlier unused ones.
- The trade issues a fresh token (Agent tokens are stored hashed, so there is no old one
  to hand out): pairing an agent that already runs elsewhere rotates its token, and the
  old connection is cut off.
- Wrong codes are counted per address; past PAIR_MAX_FAILURES in PAIR_FAILURE_WINDOW
  seconds every trade from that address is refused, right codes included.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, update

from app import accounts, db
from app.auth.throttle import LoginThrottle
from app.models import Agent, PairingCode, utcnow

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10
REFUSED = "unknown, used or expired pairing code"


class PairingRefused(Exception):
    """A trade that failed; `code` is the wire error code, `status` the HTTP status."""

    def __init__(self, code, message, status):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def new_code():
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalise(code):
    """The code as stored (no dashes or spaces, upper case), or None if it cannot be one."""
    if not isinstance(code, str) or len(code) > 64:
        return None
    raw = "".join(code.split()).replace("-", "").upper()
    if len(raw) != CODE_LENGTH or any(char not in ALPHABET for char in raw):
        return None
    return raw


def hash_code(raw):
    """What is stored of a normalised code."""
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_code(agent):
    """A new pairing code for `agent`, valid PAIRING_CODE_MINUTES; earlier unused ones are withdrawn."""
    if not agent.usable():
        raise accounts.AccountError(f"agent {agent.name!r} is revoked or expired; add a new agent")
    now = utcnow()
    # Withdraw this agent's other unused codes, and forget everybody's expired ones.
    unused_here = (PairingCode.agent_id == agent.id) & PairingCode.used_at.is_(None)
    db.session.execute(delete(PairingCode).where((PairingCode.expires_at <= now) | unused_here))
    code = new_code()
    expires = now + timedelta(minutes=current_app.config["PAIRING_CODE_MINUTES"])
    db.session.add(PairingCode(agent_id=agent.id, code_hash=hash_code(normalise(code)), expires_at=expires))
    db.session.commit()
    return code


def pair_by_name(username, agent_name):
    """A code for USER's agent AGENT (created if it does not exist); returns (agent, code, created)."""
    user = accounts.find_user(username)
    created = False
    try:
        agent = accounts.find_agent(user, agent_name)
    except accounts.AccountError:
        agent, _ = accounts.create_agent(user, agent_name)  # its first token is never shown
        created = True
    return agent, issue_code(agent), created


def _throttle():
    ext = current_app.extensions
    if "tether_pair_throttle" not in ext:
        limits = current_app.config["PAIR_MAX_FAILURES"], current_app.config["PAIR_FAILURE_WINDOW"]
        ext["tether_pair_throttle"] = LoginThrottle(*limits)
    return ext["tether_pair_throttle"]


def trade(code, address):
    """Trade a pairing code for its agent's fresh token; returns (agent, token).

    Raises PairingRefused: `rate_limited` for an address with too many wrong codes,
    `unauthorized` (one message for all) for a wrong, used or expired code.
    """
    throttle = _throttle()
    if throttle.blocked(address):
        raise PairingRefused("rate_limited", "too many wrong pairing codes; wait a few minutes", 429)
    agent = _claim(code)
    if agent is None:
        throttle.failed(address)
        raise PairingRefused("unauthorized", REFUSED, 401)
    # Commits the claim with the new token, and closes a socket still on the old one.
    token = accounts.rotate_token(agent)
    return agent, token


def _claim(code):
    """Mark the code used and return its agent, or None (nothing changed) if it cannot be used."""
    raw = normalise(code)
    if raw is None:
        return None
    digest = hash_code(raw)
    row = db.session.scalar(db.select(PairingCode).filter_by(code_hash=digest))
    # The lookup is by hash; comparing again in constant time costs nothing and keeps the
    # rule simple: no secret is ever compared with ==.
    if row is None or not hmac.compare_digest(row.code_hash, digest):
        return None
    now = utcnow()
    agent = db.session.get(Agent, row.agent_id)
    if row.expires_at <= now or agent is None or not agent.usable(now):
        return None
    claimed = db.session.execute(
        update(PairingCode).where(PairingCode.id == row.id, PairingCode.used_at.is_(None)).values(used_at=now)
    ).rowcount
    if not claimed:
        db.session.rollback()
        return None
    return agent
