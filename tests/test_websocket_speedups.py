"""app/websocket_speedups.py: the replacements do what gevent-websocket's and eventlet's own functions do."""

import os
import random

import pytest

from app import websocket_speedups
from app.websocket_speedups import Utf8Validator, xor_mask

pytestmark = pytest.mark.filterwarnings(r"ignore:(?s).*Eventlet is deprecated")


@pytest.mark.parametrize("async_mode", ["gevent", "eventlet"])
def test_the_patched_internals_are_still_in_the_libraries(async_mode):
    assert websocket_speedups.missing_internals(async_mode) == []


def keep_engineio_as_it_is(monkeypatch):
    """Engine.IO's functions that install("gevent") wraps come back after the test."""
    from engineio.async_drivers.gevent import WebSocketWSGI
    from engineio.socket import Socket

    monkeypatch.setattr(Socket, "poll", Socket.poll)
    monkeypatch.setattr(WebSocketWSGI, "send", WebSocketWSGI.send)


def original_xor(data, mask, offset=0):
    return bytes(data[i] ^ mask[(offset + i) % 4] for i in range(len(data)))


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 17, 1000, 65_537])
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 6])
def test_xor_mask_is_rfc6455_masking(length, offset):
    data, mask = os.urandom(length), os.urandom(4)
    assert bytes(xor_mask(data, mask, offset)) == original_xor(data, mask, offset)
    assert bytes(xor_mask(xor_mask(data, mask, offset), mask, offset)) == data


def test_gevent_websocket_unmasks_and_validates_as_before(monkeypatch):
    from geventwebsocket import websocket

    original_mask, original_validator = websocket.Header.mask_payload, websocket.Utf8Validator
    for name in ("mask_payload", "unmask_payload"):
        monkeypatch.setattr(websocket.Header, name, getattr(websocket.Header, name))
    monkeypatch.setattr(websocket, "Utf8Validator", websocket.Utf8Validator)
    keep_engineio_as_it_is(monkeypatch)
    websocket_speedups.install("gevent")
    assert websocket.Utf8Validator is Utf8Validator

    for length in (0, 1, 7, 4096):
        header = websocket.Header(fin=True, opcode=1, length=length)
        header.mask = os.urandom(4)
        payload = os.urandom(length)
        assert bytes(header.unmask_payload(payload)) == bytes(original_mask(header, payload))

    samples = ["plain ascii", "naïve café ✓ 😀", "", "\u0000 nul is valid"]
    broken = [b"\xff", b"ok \xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]  # surrogate, beyond U+10FFFF
    for data in [s.encode() for s in samples] + broken:
        for cut in sorted({0, 1, len(data) // 2, len(data)}):  # the same bytes, split over two frames
            ours, theirs = Utf8Validator(), original_validator()
            first = ours.validate(data[:cut])[:2]
            assert first == theirs.validate(data[:cut])[:2], (data, cut)
            if first[0]:  # (valid, ends on a code point)
                assert ours.validate(data[cut:])[:2] == theirs.validate(data[cut:])[:2], (data, cut)


def test_eventlet_unmasks_as_before(monkeypatch):
    from eventlet.websocket import RFC6455WebSocket

    original = RFC6455WebSocket._apply_mask
    monkeypatch.setattr(RFC6455WebSocket, "_apply_mask", RFC6455WebSocket.__dict__["_apply_mask"])
    websocket_speedups.install("eventlet")
    rng = random.Random(7)
    for length in (0, 1, 5, 1000):
        data, mask = os.urandom(length + 3), tuple(rng.randrange(256) for _ in range(4))
        for offset in (0, 1, 5):
            expected = original(data, mask, length=length, offset=offset)
            assert RFC6455WebSocket._apply_mask(data, mask, length=length, offset=offset) == expected
        assert RFC6455WebSocket._apply_mask(data, mask) == original(data, mask)


def test_threading_mode_is_left_alone():
    websocket_speedups.install("threading")  # simple-websocket is fast already: nothing to patch
    assert websocket_speedups.missing_internals("threading") == []


class CapturedStream:
    """What gevent-websocket writes to its connection, kept."""

    def __init__(self):
        self.written = []

    def write(self, data):
        self.written.append(bytes(data))

    def read(self, size):
        return b""


def test_a_batch_of_messages_goes_out_as_the_same_frames_gevent_websocket_writes_one_by_one():
    from geventwebsocket.websocket import WebSocket

    messages = ["2", '42/web,["command_result",{"seq":1}]', "ünïcödé 😀", b"\x00\x01binary", "x" * 70_000, ""]
    messages += ["z" * 125, "z" * 126, "é" * 200, b"b" * 65_535, b"b" * 65_536]
    one_by_one, batched = CapturedStream(), CapturedStream()
    theirs, ours = WebSocket({}, one_by_one, None), WebSocket({}, batched, None)  # kept: closing writes
    for message in messages:
        theirs.send(message)
    websocket_speedups.write_frames(ours, [websocket_speedups.frame(message) for message in messages])
    assert batched.written == [b"".join(one_by_one.written)]


def test_a_large_batch_is_written_in_pieces_of_bounded_size():
    from geventwebsocket.websocket import WebSocket

    stream = CapturedStream()
    websocket = WebSocket({}, stream, None)
    websocket_speedups.write_frames(websocket, [websocket_speedups.frame("y" * 100_000)] * 8)
    assert len(stream.written) > 1
    assert all(len(piece) < websocket_speedups.FRAME_BATCH_BYTES + 100_100 for piece in stream.written)


def test_a_closed_websocket_takes_no_batch():
    from geventwebsocket.exceptions import WebSocketError
    from geventwebsocket.websocket import WebSocket

    stream = CapturedStream()
    websocket = WebSocket({}, stream, None)
    websocket.closed = True
    with pytest.raises(WebSocketError):
        websocket_speedups.write_frames(websocket, [b"\x81\x01a"])
    assert stream.written == []


@pytest.mark.parametrize("async_mode", ["gevent", "threading"])
def test_only_an_upgraded_gevent_socket_hands_its_writer_a_batch(monkeypatch, async_mode):
    import engineio
    from engineio import packet
    from engineio.socket import Socket

    keep_engineio_as_it_is(monkeypatch)
    websocket_speedups.install("gevent")
    socket = Socket(engineio.Server(async_mode=async_mode), "sid")
    queued = [packet.Packet(packet.MESSAGE, data=f"m{n}") for n in range(3)]

    def poll_after(upgraded, packets):
        socket.upgraded = upgraded
        for queued_packet in packets:
            socket.queue.put(queued_packet)
        return socket.poll()

    assert poll_after(False, queued) == queued  # long-polling: a payload of packets, as before
    assert poll_after(True, queued[:1]) == queued[:1]  # one packet: nothing to gain
    polled = poll_after(True, queued)
    if async_mode == "gevent":
        assert [type(item) for item in polled] == [websocket_speedups.FrameBatch]
        assert polled[0].packets == queued and polled[0].encode() is polled[0]
    else:
        assert polled == queued  # simple-websocket would not know a batch


def test_a_packet_is_framed_once_for_all_the_sockets_it_goes_to():
    from engineio import packet

    shared = packet.Packet(packet.MESSAGE, data='2/web,["command_result",{"seq":3}]')
    framed = websocket_speedups._frame_of(shared)
    assert framed == websocket_speedups.frame(shared.encode())
    assert websocket_speedups._frame_of(shared) is framed


def test_a_sent_batch_lets_go_of_its_packets():
    """Engine.IO's writer keeps its last batch while it waits for the next: it must be empty."""
    from types import SimpleNamespace

    from engineio import packet
    from geventwebsocket.websocket import WebSocket

    stream = CapturedStream()
    wsgi_websocket = SimpleNamespace(_sock=WebSocket({}, stream, None))
    batch = websocket_speedups.FrameBatch([packet.Packet(packet.MESSAGE, data=f"m{n}") for n in range(2)])
    websocket_speedups._batch_sending(send=None)(wsgi_websocket, batch)
    assert stream.written == [websocket_speedups.frame("4m0") + websocket_speedups.frame("4m1")]
    assert batch.packets == ()
