"""Large WebSocket messages without stopping the server: unmasking and UTF-8 checks at C speed.

gevent-websocket and eventlet unmask every frame a client sends byte by byte in
Python, and gevent-websocket checks a text frame's UTF-8 the same way (twice: per
frame and per message). Measured here: a 7 MB message took 1.35 s to unmask and
2.2 s to check under gevent, and eventlet unmasked 0.54 s per MB, with the whole
server process stopped meanwhile (its presence heartbeat included). Tether's
largest messages (an execute_command with 5 MiB of attachments, an agent's answer
holding 1 MiB of text) made that seconds. `install(async_mode)` swaps those
functions for ones that do the same work through `bytes.translate` and the codecs
module; simple-websocket (threading mode) already works that way (wsproto).

The swapped functions are named in INTERNALS; tests/test_websocket_speedups.py
checks that the libraries still have them and that the replacements give the same
results as the originals.
"""

import codecs
import importlib

# One translation table per mask byte: table[k][b] == b ^ k.
_XOR = [bytes(value ^ key for value in range(256)) for key in range(256)]

# (module, class or None, attribute) each async mode's library is patched at.
INTERNALS = {
    "gevent": (
        ("geventwebsocket.websocket", "Header", "mask_payload"),
        ("geventwebsocket.websocket", "Header", "unmask_payload"),
        ("geventwebsocket.websocket", None, "Utf8Validator"),
    ),
    "eventlet": (("eventlet.websocket", "RFC6455WebSocket", "_apply_mask"),),
}


def xor_mask(data, mask, offset=0):
    """`data` XORed with the 4-byte `mask`, starting at mask position `offset` (RFC 6455 masking)."""
    out = bytearray(data)
    for lane in range(4):
        out[lane::4] = out[lane::4].translate(_XOR[mask[(offset + lane) % 4]])
    return out


def _gevent_mask_payload(header, payload):
    return xor_mask(payload, bytearray(header.mask))


def _eventlet_apply_mask(data, mask, length=None, offset=0):
    length = len(data) if length is None else length
    return bytes(xor_mask(memoryview(data)[:length], mask, offset))


class Utf8Validator:
    """gevent-websocket's incremental UTF-8 validator, through the codecs module.

    `validate(chunk)` returns (valid, ends on a code point, index in the chunk,
    index in all that was validated since `reset`), as the original does.
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._total = 0

    def validate(self, chunk):
        try:
            self._decoder.decode(bytes(chunk), final=False)
        except UnicodeDecodeError as error:
            return False, False, error.start, self._total + error.start
        self._total += len(chunk)
        pending, _ = self._decoder.getstate()
        return True, not pending, len(chunk), self._total


def _replacements(async_mode):
    if async_mode == "gevent":
        return (_gevent_mask_payload, _gevent_mask_payload, Utf8Validator)
    return (staticmethod(_eventlet_apply_mask),)


def missing_internals(async_mode):
    """What `install(async_mode)` would patch that the installed library lacks (empty when all is well)."""
    missing = []
    for module_name, owner_name, attribute in INTERNALS.get(async_mode, ()):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            missing.append(module_name)
            continue
        owner = getattr(module, owner_name, None) if owner_name else module
        if owner is None or not hasattr(owner, attribute):
            missing.append(f"{module_name}.{owner_name + '.' if owner_name else ''}{attribute}")
    return missing


def install(async_mode):
    """Patch the WebSocket library of `async_mode` (gevent, eventlet); nothing for the others."""
    if async_mode not in INTERNALS:
        return
    for (module_name, owner_name, attribute), replacement in zip(
        INTERNALS[async_mode], _replacements(async_mode), strict=True
    ):
        module = importlib.import_module(module_name)
        setattr(getattr(module, owner_name) if owner_name else module, attribute, replacement)
