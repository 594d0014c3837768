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
