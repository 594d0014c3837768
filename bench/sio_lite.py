"""A lean asyncio Socket.IO v5 client (Engine.IO v4 over WebSocket) for load generation.

Why not python-socketio's own clients: its threaded client rides on websocket-client,
which never offers permessage-deflate (browsers always do), and its AsyncClient needs
aiohttp and costs far more per connection than 5,000 idle sockets can afford in one
process. This client is an `asyncio.Protocol` with no task per connection, so one
process holds thousands of sockets, and its per-message cost is small enough that
the server, not the client, is what a benchmark measures.

It offers permessage-deflate exactly like Chromium does
(``permessage-deflate; client_max_window_bits``) when asked to, inflates what the
server compresses, and sends its own frames uncompressed (RFC 7692 lets a sender
choose per message). Frames are masked with an all-zero key: valid on the wire
(the server still unmasks), and it spares the client an XOR per byte.

Timing: ``protocol.stamp`` is ``time.monotonic_ns()`` taken when the bytes of the
current read reached the process; CLOCK_MONOTONIC is system-wide, so stamps compare
across processes on one machine.
"""

import asyncio
import base64
import json
import os
import time
import zlib

DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
_TAIL = b"\x00\x00\xff\xff"
_ZERO_MASK = b"\x00\x00\x00\x00"


class ConnectError(Exception):
    """The WebSocket handshake or the Socket.IO namespace connection was refused."""


def _frame(opcode, data):
    n = len(data)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    return header + _ZERO_MASK + data


class WebSocketProtocol(asyncio.Protocol):
    """A client WebSocket: handshake, frame parsing, optional inflation."""

    def __init__(self, host, path, headers, deflate, on_text):
        self.host = host
        self.path = path
        self.headers = headers
        self.deflate_offered = deflate
        self.on_text = on_text
        self.handshake = asyncio.get_running_loop().create_future()
        self.transport = None
        self.compressed = False  # permessage-deflate was negotiated
        self.closed = asyncio.get_running_loop().create_future()
        self.stamp = 0
        self.bytes_in = 0
        self._open = False
        self._head = b""
        self._parts = []
        self._have = 0
        self._need = 0
        self._inflater = None
        self._no_takeover = False
        self._fragments = None
        self._writable = asyncio.Event()
        self._writable.set()

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if self.deflate_offered:
            lines.append(f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}")
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def connection_lost(self, exc):
        if not self.handshake.done():
            self.handshake.set_exception(ConnectError(f"connection lost during handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(exc)
        self._writable.set()

    def pause_writing(self):
        self._writable.clear()

    def resume_writing(self):
        self._writable.set()

    def data_received(self, data):
        self.stamp = time.monotonic_ns()
        self.bytes_in += len(data)
        if not self._open:
            data = self._read_handshake(data)
            if not data:
                return
        if self._need:
            # Part of a frame larger than one read: gather until it is whole.
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return
            data = b"".join(self._parts)
            self._parts = []
            self._have = self._need = 0
        self._parse(data)

    # -- sending ---------------------------------------------------------------------

    def send_text(self, text):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(0x1, text.encode() if isinstance(text, str) else text))

    async def drain(self):
        """Wait while the kernel's send buffer is full (the server is not reading)."""
        await self._writable.wait()

    def close(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(0x8, (1000).to_bytes(2, "big")))
            self.transport.close()

    # -- receiving -------------------------------------------------------------------

    def _read_handshake(self, data):
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return b""
        head, rest = self._head[:end].decode("latin-1"), self._head[end + 4 :]
        self._head = b""
        status, *lines = head.split("\r\n")
        if " 101 " not in status + " ":
            self.handshake.set_exception(ConnectError(status))
            self.transport.close()
            return b""
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        extensions = headers.get("sec-websocket-extensions", "")
        if "permessage-deflate" in extensions:
            self.compressed = True
            self._no_takeover = "server_no_context_takeover" in extensions
            self._inflater = zlib.decompressobj(-15)
        self._open = True
        self.handshake.set_result(True)
        return rest

    def _parse(self, buf):
        n = len(buf)
        i = 0
        while n - i >= 2:
            b0 = buf[i]
            length = buf[i + 1] & 0x7F
            h = 2
            if length == 126:
                if n - i < 4:
                    break
                length = int.from_bytes(buf[i + 2 : i + 4], "big")
                h = 4
            elif length == 127:
                if n - i < 10:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                h = 10
            end = i + h + length
            if end > n:
                self._need = end - i
                break
            self._message(b0, buf[i + h : end])
            i = end
        if i < n:
            rest = buf[i:]
            self._parts = [rest]
            self._have = len(rest)
            self._need = max(self._need, 2)
        else:
            self._need = 0

    def _message(self, b0, payload):
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode == 0x0:  # continuation
            self._fragments[2].append(payload)
            if not fin:
                return
            opcode, b0, parts = self._fragments
            self._fragments = None
            payload = b"".join(parts)
        elif opcode in (0x1, 0x2) and not fin:
            self._fragments = (opcode, b0, [payload])
            return
        if opcode in (0x1, 0x2):
            if b0 & 0x40:  # RSV1: compressed by the server
                if self._no_takeover:
                    self._inflater = zlib.decompressobj(-15)
                payload = self._inflater.decompress(payload + _TAIL)
            self.on_text(payload)
        elif opcode == 0x9:
            self.transport.write(_frame(0xA, payload))
        elif opcode == 0x8:
            self.close()


def split_ack_id(rest):
    """b'12["ev",…]' -> (12, b'["ev",…]'); b'["ev",…]' -> (None, same)."""
    j = 0
    while j < len(rest) and 48 <= rest[j] <= 57:
        j += 1
    return (int(rest[:j]), rest[j:]) if j else (None, rest)


class SioClient:
    """One Socket.IO connection to one namespace.

    `on_event(client, rest)` gets the raw bytes of every event packet after the
    namespace, e.g. ``b'["command_result",{...}]'`` or ``b'7["agent_command",{...}]'``
    (with the id of the acknowledgement the server waits for): parsing is left to
    the caller, so counting messages costs no JSON decoding.
    """

    def __init__(self, host, port, namespace="/", auth=None, headers=None, deflate=False, on_event=None):
        self.host = host
        self.port = port
        self.namespace = namespace
        self.auth = auth
        self.headers = dict(headers or {})
        self.deflate = deflate
        self.on_event = on_event
        self.ws = None
        self.sid = None
        self.state = {}  # free for the caller
        self._prefix = b"" if namespace == "/" else namespace.encode() + b","
        self._connected = None
        self._acks = {}
        self._next_id = 1

    async def connect(self, timeout=10.0):
        loop = asyncio.get_running_loop()
        self._connected = loop.create_future()
        path = "/socket.io/?EIO=4&transport=websocket"
        host = f"{self.host}:{self.port}"

        def factory():
            return WebSocketProtocol(host, path, self.headers, self.deflate, self._on_text)

        async def run():
            _, self.ws = await loop.create_connection(factory, self.host, self.port)
            await self.ws.handshake
            await self._connected

        await asyncio.wait_for(run(), timeout)
        return self

    def close(self):
        if self.ws is not None:
            self.ws.close()

    @property
    def stamp(self):
        return self.ws.stamp

    # -- sending --------------------------------------------------------------

    def emit(self, event, data, callback=None):
        """Send an event; `callback(reply)` runs when the server acknowledges it."""
        ack = b""
        if callback is not None:
            ack = str(self._next_id).encode()
            self._acks[self._next_id] = callback
            self._next_id += 1
        body = json.dumps([event, data], separators=(",", ":")).encode()
        self.ws.send_text(b"42" + self._prefix + ack + body)

    async def call(self, event, data, timeout=15.0):
        future = asyncio.get_running_loop().create_future()
        self.emit(event, data, callback=lambda reply: future.done() or future.set_result(reply))
        return await asyncio.wait_for(future, timeout)

    def ack(self, ack_id, reply):
        body = json.dumps([reply], separators=(",", ":")).encode()
        self.ws.send_text(b"43" + self._prefix + str(ack_id).encode() + body)

    # -- receiving --------------------------------------------------------------

    def _on_text(self, data):
        kind = data[:1]
        if kind == b"4":
            self._on_packet(data[1:])
        elif kind == b"2":
            self.ws.send_text(b"3")  # Engine.IO ping -> pong
        elif kind == b"0":
            self.sid = json.loads(data[1:])["sid"]
            auth = b"" if self.auth is None else json.dumps(self.auth, separators=(",", ":")).encode()
            self.ws.send_text(b"40" + self._prefix + auth)
        elif kind == b"1":
            self.ws.close()

    def _on_packet(self, packet):
        kind, rest = packet[:1], packet[1:]
        if self._prefix and rest.startswith(self._prefix):
            rest = rest[len(self._prefix) :]
        if kind == b"2":
            if self.on_event is not None:
                self.on_event(self, rest)
        elif kind == b"3":
            ack_id, body = split_ack_id(rest)
            callback = self._acks.pop(ack_id, None)
            if callback is not None:
                callback(json.loads(body)[0])
        elif kind == b"0":
            if not self._connected.done():
                self._connected.set_result(True)
        elif kind == b"4" and not self._connected.done():
            self._connected.set_exception(ConnectError(rest.decode(errors="replace")))


async def connect_many(make_client, count, concurrency, timeout=10.0, on_connected=None):
    """Connect `count` clients, at most `concurrency` handshakes at a time.

    Returns (clients, failures, seconds). `on_connected(n)` is called as each
    client connects (to mark checkpoints).
    """
    semaphore = asyncio.Semaphore(concurrency)
    clients, failures = [], []
    start = time.monotonic()

    async def one(index):
        async with semaphore:
            client = make_client(index)
            try:
                await client.connect(timeout)
            except (TimeoutError, OSError, ConnectError) as error:
                failures.append(repr(error)[:200])
                client.close()
                return
            clients.append(client)
            if on_connected is not None:
                on_connected(len(clients))

    await asyncio.gather(*(one(i) for i in range(count)))
    return clients, failures, time.monotonic() - start
