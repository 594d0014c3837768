"""WebSocket speed-ups: large messages at C speed, and a socket's queued messages in one write.

gevent-websocket and eventlet unmask every frame a client sends byte by byte in
Python, and gevent-websocket checks a text frame's UTF-8 the same way (twice: per
frame and per message). Measured here: a 7 MB message took 1.35 s to unmask and
2.2 s to check under gevent, and eventlet unmasked 0.54 s per MB, with the whole
server process stopped meanwhile (its presence heartbeat included). Tether's
largest messages (an execute_command with 5 MiB of attachments, an agent's answer
holding 1 MiB of text) made that seconds. `install(async_mode)` swaps those
functions for ones that do the same work through `bytes.translate` and the codecs
module; simple-websocket (threading mode) already works that way (wsproto).

Under gevent, also: Engine.IO's WebSocket writer takes every packet waiting in a
socket's queue at once (`Socket.poll`) and then writes them one frame, one
`sendall`, at a time; gevent's Python-level send path was half of the server's CPU
with 100 browsers on a session, and a writer that fell behind found 20 packets or
more waiting in most polls (bench/, docs/performance.md). `install("gevent")` makes
such a poll hand the writer one batch, which goes out as the same frames in one
write (`FRAME_BATCH_BYTES` at most per write).

The swapped functions are named in INTERNALS; tests/test_websocket_speedups.py
checks that the libraries still have them and that the replacements give the same
results (and the same bytes on the wire) as the originals.
"""

import codecs
import functools
import importlib
import struct

# One translation table per mask byte: table[k][b] == b ^ k.
_XOR = [bytes(value ^ key for value in range(256)) for key in range(256)]

# (module, class or None, attribute) each async mode's library is patched at.
INTERNALS = {
    "gevent": (
        ("geventwebsocket.websocket", "Header", "mask_payload"),
        ("geventwebsocket.websocket", "Header", "unmask_payload"),
        ("geventwebsocket.websocket", None, "Utf8Validator"),
        ("engineio.socket", "Socket", "poll"),
        ("engineio.async_drivers.gevent", "WebSocketWSGI", "send"),
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


# A writer's batch is written in pieces of about this size: one write for what small
# messages are waiting, no copy of a whole backlog of large ones.
FRAME_BATCH_BYTES = 256 * 1024


class FrameBatch:
    """The packets one poll of a WebSocket's send queue returned, for one write.

    Engine.IO's writer sends `packet.encode()` for each packet it polled; for a batch
    that is the batch itself, which the patched `send` recognises.
    """

    __slots__ = ("packets",)

    def __init__(self, packets):
        self.packets = packets

    def encode(self):
        return self


def frame(message):
    """`message` as one final, unmasked RFC 6455 frame: text for str, binary for bytes, as
    gevent-websocket frames it (tests compare the bytes)."""
    if isinstance(message, str):
        first, payload = 0x81, message.encode("utf-8")
    else:
        first, payload = 0x82, bytes(message)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 0x10000:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


def _frame_of(packet):
    """A packet's frame, made once: delivery queues the same packet for every subscriber."""
    framed = packet.__dict__.get("_websocket_frame")
    if framed is None:
        framed = packet._websocket_frame = frame(packet.encode())
    return framed


def write_frames(websocket, frames):
    """Write frames to a gevent-websocket WebSocket, one after the other, in few writes."""
    from geventwebsocket.exceptions import WebSocketError

    if websocket.closed:
        raise WebSocketError("Connection is already closed")
    pending, size = [], 0
    for framed in frames:
        pending.append(framed)
        size += len(framed)
        if size >= FRAME_BATCH_BYTES:
            websocket.raw_write(b"".join(pending))
            pending, size = [], 0
    if pending:
        websocket.raw_write(b"".join(pending))


def _batching_poll(poll):
    @functools.wraps(poll)
    def batching_poll(socket):
        packets = poll(socket)
        # Once upgraded, only the WebSocket writer polls (a late long-polling GET gets a NOOP);
        # only gevent's WebSocket (patched below) knows a batch.
        if len(packets) > 1 and socket.upgraded and socket.server.async_mode == "gevent":
            return [FrameBatch(packets)]
        return packets

    return batching_poll


def _batch_sending(send):
    @functools.wraps(send)
    def batch_sending(wsgi_websocket, message):
        if type(message) is FrameBatch:
            # Engine.IO's writer keeps its last packet while it waits for the next poll (an idle
            # socket's, for as long as it is idle): the batch lets go of what it held, ~1 KB.
            packets, message.packets = message.packets, ()
            return write_frames(wsgi_websocket._sock, [_frame_of(packet) for packet in packets])
        return send(wsgi_websocket, message)

    return batch_sending


def _replacements(async_mode):
    if async_mode == "gevent":
        from engineio.async_drivers.gevent import WebSocketWSGI
        from engineio.socket import Socket

        return (
            _gevent_mask_payload,
            _gevent_mask_payload,
            Utf8Validator,
            _batching_poll(_original(Socket.poll)),
            _batch_sending(_original(WebSocketWSGI.send)),
        )
    return (staticmethod(_eventlet_apply_mask),)


def _original(function):
    """The library's own function, even if `install` ran before (it may run once per app)."""
    return getattr(function, "__wrapped__", function)


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
