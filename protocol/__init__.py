"""Tether's wire contract, imported by the server and the agent alike.

See docs/protocol.md (and ../shared/PROTOCOL.md, the contract outside clients rely on).
"""

from protocol.events import (  # noqa: F401
    AGENT_NAMESPACE,
    ERROR_CODES,
    PROTOCOL_VERSION,
    WEB_NAMESPACE,
    Events,
)
from protocol.schemas import SCHEMAS, ProtocolError, error_reply, load, ok_reply  # noqa: F401
