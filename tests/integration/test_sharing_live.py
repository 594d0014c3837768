"""Taking access away from live sockets: a real server, real agents, real Socket.IO clients.

Each way of ending access (unsharing, revoking or outliving a read-only link,
logging out, changing the password) must reach a socket that is following a
session at that moment, within a second (the server checks every
ACCESS_CHECK_INTERVAL, 0.5 s). The bound below adds half a second of slack for a
loaded machine.
"""

import re
import threading
import time

import pytest
import requests
import socketio

from app import accounts, db
from app.models import ChatSession, Project
from tests.conftest import PASSWORD, make_user
from tests.harness import WebClient, wait_until

CUT_WITHIN = 1.5  # seconds: ACCESS_CHECK_INTERVAL (0.5) + the check itself + slack


class LinkReader:
    """A browser that opened a read-only link: no login, the token in the connect auth."""

    def __init__(self, url, path):
        self.sio = socketio.Client(reconnection=False)
        self.results = []
        self.closed_at = None
        self.sio.on("command_result", self.results.append, namespace="/web")
        self.sio.on("disconnect", self._closed, namespace="/web")
        token = path.rsplit("/", 1)[1]
        self.sio.connect(url, namespaces=["/web"], transports=["websocket"], auth={"link": token})

    def _closed(self, reason=None):
        self.closed_at = time.monotonic()

    def follow(self, session_id):
        reply = self.sio.call(
            "subscribe", {"type": "subscribe", "sessionId": session_id, "afterSeq": 0}, "/web"
        )
        assert reply["ok"], reply


def streaming(live, seed, owner):
    """A long answer streaming in a session of `seed`'s project."""
    reply = owner.run(seed.project_id, "slow: 300 20")
    wait_until(lambda: len(owner.session_results(reply["sessionId"])) >= 3, message="streaming")
    return reply


def count_of(client, session_id):
    return len(client.session_results(session_id))


def assert_receives_nothing_more(client, session_id, owner, cut_at):
    """After `cut_at` + CUT_WITHIN the client gets nothing more of the session, while the owner does."""
    time.sleep(max(0.0, cut_at + CUT_WITHIN - time.monotonic()))
    frozen = count_of(client, session_id)
    before = count_of(owner, session_id)
    wait_until(lambda: count_of(owner, session_id) > before + 5, message="the owner's stream going on")
    assert count_of(client, session_id) == frozen


def share(live, seed, username, role):
    with live.app.app_context():
        make_user(username)
        accounts.share_project(db.session.get(Project, seed.project_id), username, role)


def test_unsharing_cuts_a_members_live_stream_and_their_events(live):
    seed, (owner,) = live.ready()
    share(live, seed, "carol", "operator")
    carol = WebClient(live.url, "carol", PASSWORD).connect()
    live.clients.append(carol)
    reply = streaming(live, seed, owner)
    assert carol.follow(reply["sessionId"])["ok"]
    wait_until(lambda: count_of(carol, reply["sessionId"]) >= 3, message="carol following")

    with live.app.app_context():
        accounts.unshare_project(db.session.get(Project, seed.project_id), "carol")
    cut_at = time.monotonic()

    assert (
        carol.call("subscribe", {"sessionId": reply["sessionId"], "afterSeq": 0})["error"]["code"]
        == "not_found"
    )
    assert carol.call("cancel_command", {"sessionId": reply["sessionId"]})["error"]["code"] == "not_found"
    assert_receives_nothing_more(carol, reply["sessionId"], owner, cut_at)
    assert carol.sio.connected  # she keeps her own socket: only this project is gone


@pytest.mark.parametrize("ending", ["revoked", "expired"])
def test_a_read_only_link_stops_working_live(live, ending):
    seed, (owner,) = live.ready()
    reply = streaming(live, seed, owner)
    hours = 2 / 3600 if ending == "expired" else 1
    with live.app.app_context():
        session = db.session.get(ChatSession, reply["sessionId"])
        _, path = accounts.create_session_link(session, seed.user_id, hours)
    reader = LinkReader(live.url, path)
    reader.follow(reply["sessionId"])
    wait_until(lambda: len(reader.results) >= 3, message="the link following")

    if ending == "revoked":
        with live.app.app_context():
            accounts.revoke_session_links(db.session.get(ChatSession, reply["sessionId"]))
        cut_at = time.monotonic()
    else:
        cut_at = time.monotonic() + 2  # the link's own end, at most two seconds from its making

    wait_until(lambda: reader.closed_at is not None, timeout=10, message="the link's socket closed")
    assert reader.closed_at <= cut_at + CUT_WITHIN
    assert requests.get(live.url + path, timeout=10).status_code == 404


def test_logging_out_closes_that_logins_sockets_and_only_those(live):
    seed, (owner,) = live.ready()
    other_browser = live.browser(seed)
    closed = threading.Event()
    owner.sio.on("disconnect", lambda *args: closed.set(), namespace="/web")
    owner.sio.reconnection = False
    page = owner.http.get(live.url + "/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    assert (
        owner.http.post(live.url + "/logout", data={"csrf_token": token}, allow_redirects=False).status_code
        == 302
    )
    cut_at = time.monotonic()

    assert closed.wait(CUT_WITHIN + 0.5)
    assert time.monotonic() - cut_at <= CUT_WITHIN + 0.5
    assert other_browser.sio.connected  # another login of the same user stays
    assert owner.http.get(live.url + "/", allow_redirects=False).status_code == 302


def test_a_password_change_closes_every_socket_of_the_user(live):
    seed, clients = live.ready(browsers=2)
    closed = [threading.Event() for _ in clients]
    for client, event in zip(clients, closed, strict=True):
        client.sio.reconnection = False
        client.sio.on("disconnect", lambda *args, event=event: event.set(), namespace="/web")

    with live.app.app_context():
        accounts.set_password(seed.username, "a brand new password")

    assert all(event.wait(CUT_WITHIN + 0.5) for event in closed)
    for client in clients:
        assert client.http.get(live.url + "/", allow_redirects=False).status_code == 302


def test_simultaneous_commands_from_many_sockets_never_overshoot_the_running_limit(live_with):
    live = live_with(TETHER_MAX_RUNNING_PER_USER="3")
    seed, clients = live.ready(browsers=12)
    start = threading.Barrier(len(clients))
    replies = [None] * len(clients)

    def send(index, client):
        start.wait()
        replies[index] = client.call(
            "execute_command", {"projectId": seed.project_id, "command": "slow: 50 50"}
        )

    threads = [threading.Thread(target=send, args=pair) for pair in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    accepted = [reply for reply in replies if reply and reply["ok"]]
    refused = [reply["error"]["code"] for reply in replies if reply and not reply["ok"]]
    assert len(accepted) == 3, replies
    assert refused == ["rate_limited"] * (len(clients) - 3)
