"""Cross-site WebSocket hijacking: a page on another site must not ride the user's cookie.

The browser sends the session cookie with a WebSocket handshake whatever page
opened it, and CORS does not apply to WebSocket; only the Origin check stops a
foreign page from acting as the logged-in user.
"""

import pytest
import requests
import socketio
import websocket

from tests.harness import WebClient
from tests.sockets import app_with

FOREIGN = "https://evil.example"
LISTED = "https://tether-ui.example"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


def handshake(app, origin, **headers):
    if origin:
        headers["Origin"] = origin
    return app.test_client().get(HANDSHAKE, headers=headers)


# -- the check itself, in process ----------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [FOREIGN, "http://localhost.evil.example", "http://evil.example/http://localhost", "null"],
)
def test_handshake_from_a_foreign_origin_is_refused(app, origin):
    reply = handshake(app, origin)

    assert reply.status_code == 400
    assert b"Not an accepted origin" in reply.data


@pytest.mark.parametrize("origin", ["http://localhost", None])
def test_handshake_from_the_servers_own_origin_or_no_browser_is_accepted(app, origin):
    assert handshake(app, origin).status_code == 200


def test_origins_listed_in_tether_cors_origins_are_accepted(database_url):
    with app_with(database_url, CORS_ORIGINS=[LISTED]) as app:
        assert handshake(app, LISTED).status_code == 200
        assert handshake(app, FOREIGN).status_code == 400


def test_forwarded_host_counts_only_behind_a_declared_proxy(database_url):
    forwarded = {"X-Forwarded-Host": "tether.example", "X-Forwarded-Proto": "https"}
    with app_with(database_url, PROXY_COUNT=1) as app:
        assert handshake(app, "https://tether.example", **forwarded).status_code == 200
        assert handshake(app, FOREIGN, **forwarded).status_code == 400
    with app_with(database_url, PROXY_COUNT=0) as app:
        # Without a proxy the header is anybody's to send: it names no own origin.
        assert handshake(app, "https://tether.example", **forwarded).status_code == 400


# -- the real thing: a logged-in cookie on a real server ----------------------------------------


def listing_server(server_with):
    """The real server with one other origin listed in TETHER_CORS_ORIGINS."""
    return server_with(TETHER_CORS_ORIGINS=LISTED)


def logged_in_session(server, seed):
    return WebClient(server.url, seed.username, seed.password).http


def connect(server, http, transport, origin):
    """A Socket.IO client carrying the user's cookie, its handshake sent with `origin`."""
    client = socketio.Client(
        reconnection=False, http_session=http, websocket_extra_options={"origin": origin}
    )
    headers = {"Origin": origin} if transport == "polling" else {}
    client.connect(server.url, namespaces=["/web"], transports=[transport], headers=headers, wait_timeout=5)
    return client


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_logged_in_cookie_from_a_foreign_origin_cannot_connect_to_web(seed, server_with, transport):
    server = listing_server(server_with)
    http = logged_in_session(server, seed)

    # The client fails to open a session (gevent-websocket closes the upgraded socket
    # without an open packet, which the client reports as an empty packet).
    with pytest.raises((socketio.exceptions.ConnectionError, ValueError)):
        connect(server, http, transport, FOREIGN)

    # The control: the very same cookie from the server's own origin gets in and is served.
    own = connect(server, http, transport, server.url)
    try:
        reply = own.call("subscribe", {"type": "subscribe", "sessionId": "nope", "afterSeq": 0}, "/web")
        assert reply["error"]["code"] == "not_found"
    finally:
        own.disconnect()


def test_an_origin_listed_in_tether_cors_origins_can_connect(seed, server_with):
    server = listing_server(server_with)
    client = connect(server, logged_in_session(server, seed), "websocket", LISTED)
    assert client.connected
    client.disconnect()


def test_foreign_websocket_handshake_gets_no_engine_io_session(seed, server_with):
    """eventlet answers 400 before any upgrade; gevent-websocket upgrades before the app
    runs, and the app then closes the socket without an Engine.IO open packet. Either way
    nothing can be read or sent on it."""
    server = listing_server(server_with)
    cookie = "; ".join(f"{c.name}={c.value}" for c in logged_in_session(server, seed).cookies)
    url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"

    try:
        foreign = websocket.create_connection(url, origin=FOREIGN, cookie=cookie, timeout=5)
    except websocket.WebSocketBadStatusException as refused:
        assert refused.status_code == 400
    else:
        with pytest.raises((websocket.WebSocketException, ConnectionError, OSError)):
            opened = foreign.recv()
            assert not opened, f"a foreign origin got an Engine.IO session: {opened!r}"
            foreign.recv()
        foreign.close()

    own = websocket.create_connection(url, origin=server.url, cookie=cookie, timeout=5)
    assert own.recv().startswith("0{")  # the Engine.IO open packet
    own.close()
    assert requests.get(server.url + "/login", timeout=5).status_code == 200
