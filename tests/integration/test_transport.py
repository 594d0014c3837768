"""Transport decisions that browsers feel: WebSocket without per-message compression."""

import base64
import os
import socket


def websocket_handshake(url, extensions):
    host, port = url.removeprefix("http://").split(":")
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Extensions: {extensions}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(4096)
    head = response.split(b"\r\n\r\n")[0].decode("latin-1").lower()
    return head


def test_websocket_upgrade_refuses_permessage_deflate_that_browsers_offer(live):
    head = websocket_handshake(live.url, "permessage-deflate; client_max_window_bits")
    assert head.startswith("http/1.1 101")
    assert "sec-websocket-extensions" not in head
