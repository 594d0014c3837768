"""Limits: message size, per-socket rate, running commands, and a browser that stops reading."""

import json
import os
import socket

import pytest
import requests
import socketio
import websocket

from app import db
from app.accounts import create_agent, create_project, find_user
from app.models import AuditEntry, Command
from protocol.schemas import MAX_CHUNK_CHARS, MAX_COMMAND_CHARS
from protocol.workspace import MAX_SOCKET_MESSAGE_BYTES
from tests.harness import WebClient, wait_until
from tests.security.live import RawSocket, ScriptedAgent
from tests.sockets import Sockets, app_with, assert_refused, chunk

# -- message size ----------------------------------------------------------------------------


def test_a_message_over_the_size_limit_is_answered_too_large_and_the_socket_stays(app, seed, sockets):
    browser, agent = sockets.browser(seed), sockets.agent(seed.token)
    huge = "x" * (app.config["MAX_MESSAGE_BYTES"] + 1)

    assert_refused(browser.call("subscribe", sessionId="s", afterSeq=0, padding=huge), "too_large")
    assert_refused(agent.call("agent_heartbeat", running=[huge]), "too_large")

    assert browser.connected and agent.connected
    assert_refused(browser.call("subscribe", sessionId="s", afterSeq=0), "not_found")
    assert agent.call("agent_heartbeat", running=[])["ok"]


@pytest.mark.parametrize(
    "event, fields, field",
    [
        ("execute_command", {"projectId": "p", "command": "x" * (MAX_COMMAND_CHARS + 1)}, "command"),
        ("execute_command", {"projectId": "p" * 65, "command": "x"}, "projectId"),
        ("execute_command", {"projectId": "p", "command": "x", "workingDirectory": "/" * 5000}, None),
        ("subscribe", {"sessionId": "s", "afterSeq": 2**31}, "afterSeq"),
        (
            "permission_response",
            {"sessionId": "s", "requestId": "r", "decision": "allow", "message": "m" * 2001},
            None,
        ),
    ],
)
def test_browser_messages_beyond_the_schemas_bounds_are_invalid(seed, sockets, event, fields, field):
    error = sockets.browser(seed).call(event, **fields)["error"]

    assert error["code"] == "invalid_message"
    assert field is None or field in error["fields"]


@pytest.mark.parametrize(
    "event, fields",
    [
        ("command_response", {"seq": 1, "data": "x" * (MAX_CHUNK_CHARS + 1), "isComplete": False}),
        ("agent_heartbeat", {"running": ["c"] * 1001}),
        ("permission_request", {"requestId": "r", "toolName": "t" * 129, "input": {}}),
    ],
)
def test_agent_messages_beyond_the_schemas_bounds_are_invalid(seed, sockets, event, fields):
    if event != "agent_heartbeat":
        fields = {"sessionId": "s", "commandId": "c", **fields}
    reply = sockets.agent(seed.token).call(event, **fields)

    assert_refused(reply, "invalid_message")


def test_a_working_directory_longer_than_the_database_keeps_is_refused(app, seed, sockets):
    """The schema allows 4,096 characters, the column 1,024: PostgreSQL would fail the insert."""
    sockets.agent(seed.token)
    reply = sockets.browser(seed).call(
        "execute_command", projectId=seed.project_id, command="x", workingDirectory="/" + "d" * 2000
    )

    assert reply["error"]["code"] == "invalid_message" and "workingDirectory" in reply["error"]["fields"]
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Command.id))) == 0


# -- rate limit ------------------------------------------------------------------------------------


@pytest.fixture
def slow_app(database_url):
    """Browsers: bursts of 10, then 2 messages a second (agents get 50 times that)."""
    with app_with(database_url, RATE_LIMIT_BURST=10, RATE_LIMIT_PER_SECOND=2.0) as app:
        yield app


def burst(socket, count, event, **fields):
    return [socket.call(event, **fields) for _ in range(count)]


def codes(replies):
    return [reply.get("error", {}).get("code", "ok") for reply in replies]


def test_a_burst_beyond_the_limit_is_answered_rate_limited_and_the_socket_stays(slow_app, tmp_path):
    from tests.conftest import make_seed

    seed = make_seed(slow_app, str(tmp_path))
    sockets = Sockets(slow_app)
    try:
        browser, second = sockets.browser(seed), sockets.browser(seed)
        replies = codes(burst(browser, 40, "subscribe", sessionId="s", afterSeq=0))

        assert replies[:10] == ["not_found"] * 10
        assert replies.count("rate_limited") >= 28
        assert browser.connected
        # A forged "connect" event would give the socket a fresh bucket: it is refused.
        assert_refused(browser.emit_raw("connect", {}), "invalid_message")
        assert_refused(browser.call("subscribe", sessionId="s", afterSeq=0), "rate_limited")
        # Another socket of the same user has its own bucket.
        assert codes([second.call("subscribe", sessionId="s", afterSeq=0)]) == ["not_found"]
        # The bucket refills with time.
        wait_until(
            lambda: codes([browser.call("subscribe", sessionId="s", afterSeq=0)]) == ["not_found"],
            timeout=5,
            message="the bucket to refill",
        )
    finally:
        sockets.close()


def test_agents_have_a_wider_bucket_but_a_bucket(slow_app, tmp_path):
    from tests.conftest import make_seed

    seed = make_seed(slow_app, str(tmp_path))
    sockets = Sockets(slow_app)
    try:
        agent = sockets.agent(seed.token)
        # Invalid on purpose: the bucket is checked before anything else, so the burst is quick.
        replies = codes(burst(agent, 1000, "agent_heartbeat", running="not a list"))

        assert replies[:500] == ["invalid_message"] * 500
        assert replies.count("rate_limited") >= 200
        assert agent.connected
    finally:
        sockets.close()


# -- running commands per user and per agent ---------------------------------------------------------


@pytest.fixture
def limited_app(database_url):
    with app_with(database_url, MAX_RUNNING_PER_USER=3, MAX_RUNNING_PER_AGENT=2) as app:
        yield app


def test_running_commands_are_limited_per_agent_and_per_user(limited_app, tmp_path):
    from tests.conftest import make_seed

    app = limited_app
    seed = make_seed(app, str(tmp_path))
    with app.app_context():
        user = find_user(seed.username)
        desktop, desktop_token = create_agent(user, "desktop")
        projects = [create_project(user, desktop, f"d{i}", str(tmp_path)).id for i in range(2)]
        laptop_projects = [seed.project_id] + [
            create_project(user, db.session.get(type(desktop), seed.agent_id), f"l{i}", str(tmp_path)).id
            for i in range(2)
        ]
    sockets = Sockets(app)
    try:
        laptop = sockets.agent(seed.token)
        sockets.agent(desktop_token)
        browser = sockets.browser(seed)

        def run(project_id):
            return browser.call("execute_command", projectId=project_id, command="say: hi")

        first, second = run(laptop_projects[0]), run(laptop_projects[1])
        assert first["ok"] and second["ok"]
        per_agent = run(laptop_projects[2])
        assert per_agent["error"]["code"] == "rate_limited" and "agent" in per_agent["error"]["message"]
        assert run(projects[0])["ok"]  # the other agent still has room
        per_user = run(projects[1])
        assert per_user["error"]["code"] == "rate_limited" and "user" in per_user["error"]["message"]
        with app.app_context():
            assert db.session.scalar(db.select(db.func.count(Command.id))) == 3
            assert db.session.scalar(db.select(db.func.count(AuditEntry.id))) == 3

        # A finished command frees its place.
        assert laptop.call("command_response", chunk(first, 1, "done", complete=True))["ok"]
        wait_until(lambda: run(laptop_projects[2]).get("ok"), timeout=10, message="a free place")
    finally:
        sockets.close()


# -- Engine.IO's own limit, on a real server --------------------------------------------------------


def test_a_websocket_message_over_the_engineio_limit_closes_only_that_connection(server, seed):
    http = WebClient(server.url, seed.username, seed.password).http
    bystander = WebClient(server.url, seed.username, seed.password).connect()
    raw = RawSocket(server.url, http)
    raw.join("/web")

    too_big = "42/web,1" + json.dumps(["subscribe", {"padding": "x" * (MAX_SOCKET_MESSAGE_BYTES + 1)}])

    assert closed_on_sending(raw.ws, too_big)
    reply = bystander.call("subscribe", {"sessionId": "nope", "afterSeq": 0})
    assert reply["error"]["code"] == "not_found"
    bystander.close()


def closed_on_sending(ws, message):
    """The server closes the connection: with a close frame, or (eventlet, which reads the frame's
    length first) by dropping it before the rest of the message has gone out."""
    try:
        ws.send(message)
        opcode, _ = ws.recv_data(control_frame=True)
    except (BrokenPipeError, ConnectionResetError, websocket.WebSocketConnectionClosedException):
        return True
    return opcode == websocket.ABNF.OPCODE_CLOSE


def open_fds(server):
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


def polling_post(server, headers, body=b"", timeout=5):
    """A raw long-polling POST on a fresh Engine.IO session; returns the status line."""
    opened = requests.get(server.url + "/socket.io/?EIO=4&transport=polling", timeout=5).text
    sid = json.loads(opened[1:])["sid"]
    request = f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as conn:
        conn.sendall((request + headers + "\r\n").encode() + body)
        return conn.recv(200).split(b"\r\n")[0].decode()


@pytest.mark.parametrize(
    "headers, body, status",
    [
        (
            f"Content-Length: {MAX_SOCKET_MESSAGE_BYTES + 1}\r\n",
            b"",
            "413",
        ),  # over the limit, body never sent
        ("Content-Length: 1\r\n", b"6", "400"),  # a noop: no packet a client may send
        ("Content-Length: 3\r\n", b"2\x1e3", "400"),  # a ping from the client
    ],
)
def test_polling_posts_engineio_would_hang_on_are_answered_at_once_and_leave_nothing(
    server, headers, body, status
):
    """python-engineio leaves such a request hanging for ever, one open connection each."""
    before = open_fds(server)

    answers = [polling_post(server, headers, body) for _ in range(10)]

    assert all(status in answer for answer in answers), answers
    wait_until(lambda: open_fds(server) <= before + 2, timeout=10, message="connections to be released")
    assert requests.get(server.url + "/login", timeout=5).status_code == 200


def test_a_well_formed_polling_session_still_works(server, seed):
    client = socketio.Client(
        reconnection=False, http_session=WebClient(server.url, seed.username, seed.password).http
    )
    client.connect(server.url, namespaces=["/web"], transports=["polling"], wait_timeout=5)
    try:
        reply = client.call(
            "subscribe", {"type": "subscribe", "sessionId": "nope", "afterSeq": 0}, "/web", timeout=10
        )
        assert reply["error"]["code"] == "not_found"
    finally:
        client.disconnect()


# -- a browser that stops reading ---------------------------------------------------------------------

SEND_QUEUE = 100
CHUNKS = 500
CHUNK_CHARS = 32_000


def kernel_slack_packets(receive_buffer):
    """How many packets the two kernels can hold between the server and a socket that reads nothing."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as wmem:
        send_max = int(wmem.read().split()[2])
    return (send_max + 4 * receive_buffer) // CHUNK_CHARS + 2


def read_until_cut(raw, session_id):
    """Read a stuck socket's backlog: (seqs of command_result received, whether it was cut off)."""
    seqs = []
    while True:
        packet = raw.recv()
        if packet.startswith('42/web,["command_result"'):
            result = json.loads(packet[len("42/web,") :])[1]
            if result["sessionId"] == session_id:
                seqs.append(result["seq"])
        elif packet.startswith("41/web,"):
            return seqs, True
        if seqs and seqs[-1] == CHUNKS:
            return seqs, False


# The send queue's bound, in packets or in bytes: either one cuts a non-reader off after
# SEND_QUEUE chunks of CHUNK_CHARS.
BOUNDS = {
    "packets": {"TETHER_MAX_SEND_QUEUE": str(SEND_QUEUE)},
    "bytes": {
        "TETHER_MAX_SEND_QUEUE": "100000",
        "TETHER_MAX_SEND_QUEUE_BYTES": str(SEND_QUEUE * CHUNK_CHARS),
    },
}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("bound", sorted(BOUNDS))
def test_a_browser_that_stops_reading_is_cut_off_and_catches_up_through_subscribe(seed, server_with, bound):
    # The stuck socket answers no ping while it reads nothing: on a loaded machine the stream
    # outlasted Engine.IO's heartbeat (20 s), which closed the whole connection. This test is
    # about delivery's cut-off (one namespace; the connection stays), so the heartbeat waits.
    server = server_with(**BOUNDS[bound], TETHER_PING_INTERVAL="600")
    agent = ScriptedAgent(server.url, seed.token)
    sender = WebClient(server.url, seed.username, seed.password).connect()
    reply = sender.run(seed.project_id, "stream a lot")
    command = {"sessionId": reply["sessionId"], "commandId": reply["commandId"]}
    agent.next_command()
    receive_buffer = 4096
    stuck = RawSocket(server.url, WebClient(server.url, seed.username, seed.password).http, receive_buffer)
    stuck.join("/web")
    assert stuck.call(
        "/web", "subscribe", {"type": "subscribe", "sessionId": command["sessionId"], "afterSeq": 0}
    )["ok"]

    agent.stream(command, CHUNKS, size=CHUNK_CHARS)  # the stuck socket reads nothing meanwhile

    # The browser that kept reading got everything, in order.
    sender.wait_final(command["commandId"], timeout=180)  # 16 MB through a loaded machine
    assert [r["seq"] for r in sender.session_results(command["sessionId"])] == list(range(1, CHUNKS + 1))
    # The stuck one was sent at most the queue bound beyond what the kernels buffer, then cut off.
    seqs, cut = read_until_cut(stuck, command["sessionId"])
    assert cut, f"never cut off; it was sent {len(seqs)} of {CHUNKS} results"
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) <= SEND_QUEUE + kernel_slack_packets(receive_buffer) < CHUNKS
    assert "is not reading; disconnecting it" in server.output()
    # Catching up: join again and subscribe after the last seq seen, as the page does.
    rounds = 0
    while seqs[-1] < CHUNKS:
        rounds += 1
        assert rounds <= 20, seqs[-1]
        stuck.join("/web")
        stuck.send_event(
            "/web",
            "subscribe",
            {"type": "subscribe", "sessionId": command["sessionId"], "afterSeq": seqs[-1]},
        )
        more, _ = read_until_cut(stuck, command["sessionId"])
        assert more == list(range(seqs[-1] + 1, seqs[-1] + 1 + len(more)))
        seqs += more
    agent.close()
    sender.close()
    stuck.close()
