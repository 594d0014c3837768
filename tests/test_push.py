"""Web Push in process: the endpoint guard, the subscription API, the sender against a real
push service stand-in on loopback, one push per event, and the dashboard's live list."""

import re
import time
from datetime import timedelta

import pytest
import requests

from app import current_services, db, notify, push
from app.models import ChatSession, Command, NotificationSent, PushSubscription, utcnow
from app.push_guard import MAX_ANSWER_BYTES, EndpointRefused, GuardedSession, check_endpoint
from tests.conftest import PASSWORD, make_command, make_seed
from tests.harness import wait_until
from tests.push_service import Subscriber, check_vapid, unb64url
from tests.sockets import app_with, chunk

META_TOKEN = r'<meta name="csrf-token" content="([^"]+)"'
REFUSED = [
    "http://push.example.com/send/1",  # not https
    "https://127.0.0.1/send/1",
    "https://10.1.2.3/send/1",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/send/1",
    "https://[::ffff:127.0.0.1]/send/1",
    "https://localhost/send/1",  # a name that resolves to 127.0.0.1
    "https://2130706433/send/1",  # 127.0.0.1 spelled as one number
    "https://user:secret@push.example.com/send/1",
    "https://100.64.0.1/send/1",  # shared address space (carrier NAT)
    "ftp://push.example.com/x",
    "not a url",
]


@pytest.fixture
def push_app(database_url):
    """An app that may push to the stand-in on loopback, and retries fast."""
    settings = {"PUSH_ALLOW_PRIVATE": True, "PUSH_RETRY_BASE": 0.05, "PUSH_ATTEMPTS": 3, "PUSH_TIMEOUT": 5}
    with app_with(database_url, **settings) as app:
        yield app


def signed_in(app, seed):
    client = app.test_client()
    assert client.post("/login", data={"username": seed.username, "password": PASSWORD}).status_code == 302
    return client


def subscriptions(app):
    with app.app_context():
        return [(s.user_id, s.endpoint) for s in db.session.scalars(db.select(PushSubscription))]


# -- the endpoint guard -----------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", REFUSED)
def test_the_guard_refuses_endpoints_outside_the_public_internet(endpoint):
    with pytest.raises(EndpointRefused):
        check_endpoint(endpoint)


def test_the_guard_takes_a_public_https_endpoint_and_tests_may_use_loopback():
    check_endpoint("https://8.8.8.8/push/send/abc")
    check_endpoint("http://127.0.0.1:9/send/1", allow_private=True)


def test_the_connection_itself_is_refused_when_the_name_resolves_inside(service):
    """Checked again at connect time, on the address connected to: a subscription accepted
    yesterday whose name points inside today (DNS rebinding) reaches nothing."""
    port = service.server.server_port
    with pytest.raises(EndpointRefused):
        GuardedSession().post(f"https://localhost:{port}/ok/1", data=b"x", timeout=5)
    assert service.received() == []


def test_redirects_are_never_followed(service):
    answer = GuardedSession(allow_private=True).post(service.endpoint("redirect"), data=b"x", timeout=5)
    assert answer.status_code == 308
    assert [r.behaviour for r in service.received()] == ["redirect"]  # /ok/redirected never asked


def test_a_push_services_answer_is_read_only_up_to_a_bound(service):
    answer = GuardedSession(allow_private=True).post(service.endpoint("huge"), data=b"x", timeout=5)
    assert answer.status_code == 201
    assert len(answer.content) == MAX_ANSWER_BYTES


# -- the subscription API ----------------------------------------------------------------------------


def test_the_application_server_key_is_a_p256_point_and_stays_the_same(app, seed):
    client = signed_in(app, seed)
    first = client.get("/push/key").get_json()["publicKey"]
    assert len(unb64url(first)) == 65 and unb64url(first)[0] == 4
    assert client.get("/push/key").get_json()["publicKey"] == first


def test_a_key_made_for_the_instance_is_kept_and_shared(tmp_path):
    path = tmp_path / push.KEY_FILE
    push._create_key_file(path)
    made = path.read_bytes()
    push._create_key_file(path)  # a second process racing the first keeps the first key
    assert path.read_bytes() == made
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert push._load_key(made).curve.name == "secp256r1"


def test_a_browser_subscribes_and_unsubscribes(app, seed):
    client = signed_in(app, seed)
    subscription = Subscriber().subscription("https://8.8.8.8/push/abc")
    reply = client.post("/push/subscriptions", json=subscription)
    assert reply.status_code == 201, reply.get_json()
    assert subscriptions(app) == [(seed.user_id, "https://8.8.8.8/push/abc")]
    assert client.post("/push/subscriptions", json=subscription).status_code == 201  # idempotent
    assert len(subscriptions(app)) == 1
    reply = client.delete("/push/subscriptions", json=subscription)
    assert reply.get_json() == {"ok": True, "removed": True}
    assert subscriptions(app) == []


@pytest.mark.parametrize("endpoint", REFUSED)
def test_the_api_refuses_endpoints_outside_the_public_internet(app, seed, endpoint):
    reply = signed_in(app, seed).post("/push/subscriptions", json=Subscriber().subscription(endpoint))
    assert reply.status_code == 400
    assert "endpoint" in reply.get_json()["error"]["fields"]
    assert subscriptions(app) == []


@pytest.mark.parametrize(
    "change",
    [
        {"keys": {"p256dh": "AAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}},  # not a curve point
        {"keys": {"p256dh": None, "auth": "x"}},
        {"keys": {}},
        {"endpoint": None},
        {"endpoint": "https://8.8.8.8/" + "a" * 3000},
        {"expirationTime": None, "padding": "x" * 20_000},
        {"unexpected": 1},
    ],
)
def test_the_api_refuses_malformed_subscriptions(app, seed, change):
    body = {**Subscriber().subscription("https://8.8.8.8/push/abc"), **change}
    reply = signed_in(app, seed).post("/push/subscriptions", json=body)
    assert reply.status_code == 400
    assert reply.get_json()["ok"] is False
    assert subscriptions(app) == []


def test_the_auth_secret_must_be_16_bytes(app, seed):
    body = Subscriber().subscription("https://8.8.8.8/push/abc")
    body["keys"]["auth"] = "AAAA"
    reply = signed_in(app, seed).post("/push/subscriptions", json=body)
    assert reply.get_json()["error"]["fields"] == {"keys": {"auth": ["Not 16 bytes."]}}


def test_a_browser_belongs_to_whoever_subscribed_it_last(app, seed, other):
    subscription = Subscriber().subscription("https://8.8.8.8/push/shared-browser")
    assert signed_in(app, seed).post("/push/subscriptions", json=subscription).status_code == 201
    assert signed_in(app, other).post("/push/subscriptions", json=subscription).status_code == 201
    assert subscriptions(app) == [(other.user_id, "https://8.8.8.8/push/shared-browser")]
    # and alice can no longer remove what is now bob's
    removed = signed_in(app, seed).delete("/push/subscriptions", json=subscription).get_json()["removed"]
    assert removed is False


def test_a_user_keeps_the_newest_subscriptions_only(app, seed):
    client = signed_in(app, seed)
    for number in range(push.MAX_SUBSCRIPTIONS_PER_USER + 2):
        client.post("/push/subscriptions", json=Subscriber().subscription(f"https://8.8.8.8/push/{number}"))
    kept = sorted(int(endpoint.rsplit("/", 1)[1]) for _, endpoint in subscriptions(app))
    assert kept == list(range(2, push.MAX_SUBSCRIPTIONS_PER_USER + 2))


def test_the_push_api_needs_a_login(app):
    client = app.test_client()
    assert client.get("/push/key").status_code == 401
    assert client.post("/push/subscriptions", json={}).status_code == 401
    assert client.post("/push/test").status_code == 401


def test_subscribing_needs_the_csrf_token_of_the_page(database_url, tmp_path):
    with app_with(database_url, WTF_CSRF_ENABLED=True) as app:
        seed = make_seed(app, str(tmp_path))
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(META_TOKEN, page).group(1)
        client.post("/login", data={"username": seed.username, "password": PASSWORD, "csrf_token": token})
        token = re.search(META_TOKEN, client.get("/").text).group(1)
        subscription = Subscriber().subscription("https://8.8.8.8/push/abc")
        assert client.post("/push/subscriptions", json=subscription).status_code == 400
        assert subscriptions(app) == []
        reply = client.post("/push/subscriptions", json=subscription, headers={"X-CSRFToken": token})
        assert reply.status_code == 201


def test_every_page_carries_the_csrf_meta_tag(app, seed):
    assert app.test_client().get("/login").text.count('<meta name="csrf-token"') == 1
    client = signed_in(app, seed)
    for path in ("/", f"/projects/{seed.project_id}", f"/projects/{seed.project_id}/audit", "/account"):
        assert client.get(path).text.count('<meta name="csrf-token"') == 1, path


def test_the_service_worker_is_served_from_the_root(app):
    reply = app.test_client().get("/sw.js")
    assert reply.status_code == 200
    assert reply.mimetype == "text/javascript"
    assert "no-cache" in reply.headers["Cache-Control"]
    assert b'addEventListener("push"' in reply.data


def test_the_settings_say_which_events_are_pushed(app, seed):
    client = signed_in(app, seed)
    assert b'data-testid="notify-permission"' in client.get("/account").data
    client.post("/account", data={"permission": "y"})  # "finished" unticked
    with app.app_context():
        settings = push.settings_of(seed.user_id)
        assert (settings.permission, settings.finished) == (True, False)


# -- payloads and claims ---------------------------------------------------------------------------------


def test_a_payload_stays_within_its_bound_and_keeps_its_fields():
    import json

    data = push.payload("Allow Write?", "é" * 100_000, "/projects/p?session=s", "s")
    assert len(data) <= push.MAX_PAYLOAD_BYTES
    message = json.loads(data)
    assert message["title"] == "Allow Write?" and message["url"] == "/projects/p?session=s"
    assert message["tag"] == "s" and message["body"].startswith("ééé")


def test_an_event_is_claimed_once_per_user(app, seed, other):
    with app.app_context():
        assert push.claim(seed.user_id, "permission:r1") is True
        assert push.claim(seed.user_id, "permission:r1") is False
        assert push.claim(other.user_id, "permission:r1") is True


# -- the sender, against the stand-in ---------------------------------------------------------------


def subscribe(app, seed, service, behaviour="ok"):
    subscriber = Subscriber()
    endpoint = service.endpoint(behaviour)
    reply = signed_in(app, seed).post("/push/subscriptions", json=subscriber.subscription(endpoint))
    assert reply.status_code == 201, reply.get_json()
    return subscriber


def test_a_test_push_is_encrypted_for_the_browser_and_signed_with_the_servers_key(push_app, seed, service):
    subscriber = subscribe(push_app, seed, service)
    client = signed_in(push_app, seed)
    assert client.post("/push/test").status_code == 202
    [request] = service.wait_for(1)
    assert request.headers["content-encoding"] == "aes128gcm"
    assert int(request.headers["ttl"]) > 0
    claims, key = check_vapid(request.headers["authorization"], service.url)
    assert key == client.get("/push/key").get_json()["publicKey"]
    assert subscriber.message(request) == {
        "title": "Tether",
        "body": "Notifications reach this browser.",
        "url": "/account",
        "tag": "tether-test",
    }
    assert client.post("/push/test").status_code == 429  # not twice within TEST_EVERY seconds


def test_two_test_pushes_on_either_side_of_a_window_s_end_are_one(push_app, seed, service, monkeypatch):
    """The claim's key changes every TEST_EVERY seconds; a second click just after the change is
    still within TEST_EVERY seconds of the first, and refused."""
    subscribe(push_app, seed, service)
    client = signed_in(push_app, seed)
    window_end = (time.time() // push.TEST_EVERY + 1) * push.TEST_EVERY
    monkeypatch.setattr(push.time, "time", lambda: window_end - 0.5)
    assert client.post("/push/test").status_code == 202
    monkeypatch.setattr(push.time, "time", lambda: window_end + 0.5)
    assert client.post("/push/test").status_code == 429
    service.wait_for(1)


def test_an_expired_subscription_is_deleted(push_app, seed, service):
    subscribe(push_app, seed, service, "gone")
    assert signed_in(push_app, seed).post("/push/test").status_code == 202
    service.wait_for(1, "gone")
    wait_until(lambda: subscriptions(push_app) == [], message="the subscription deleted")


def test_a_failing_push_service_is_tried_again_with_backoff_then_given_up(push_app, seed, service):
    subscribe(push_app, seed, service, "fail")
    assert signed_in(push_app, seed).post("/push/test").status_code == 202
    attempts = service.wait_for(push_app.config["PUSH_ATTEMPTS"], "fail")
    assert len({request.body for request in attempts}) == len(attempts)  # each freshly encrypted
    sender = current_services(push_app).push
    wait_until(lambda: sender.retries.empty() and not sender.waiting, message="no attempt left")
    assert len(subscriptions(push_app)) == 1  # a failing service is no reason to forget the browser


def test_a_redirecting_push_service_is_not_followed_nor_retried(push_app, seed, service):
    subscribe(push_app, seed, service, "redirect")
    with push_app.app_context():
        subscription = db.session.scalar(db.select(PushSubscription))
        delivery = push.Delivery(subscription.id, subscription.to_webpush(), b"{}")
    assert push.send(push_app, delivery) == ("dropped", None)
    assert [r.behaviour for r in service.received()] == ["redirect"]


def test_a_push_service_that_cannot_be_reached_is_retried(push_app):
    delivery = push.Delivery(1, Subscriber().subscription("http://127.0.0.1:9/ok/1"), b"{}")
    assert push.send(push_app, delivery)[0] == "retry"


# -- what is pushed, once ------------------------------------------------------------------------------------


def finished_command(app, seed, seconds):
    session_id, command_id = make_command(app, seed, state="done")
    with app.app_context():
        command = db.session.get(Command, command_id)
        command.finished_at = utcnow()
        command.created_at = command.finished_at - timedelta(seconds=seconds)
        db.session.commit()
    return session_id, command_id


def claims(app):
    with app.app_context():
        return sorted(row.event_key for row in db.session.scalars(db.select(NotificationSent)))


def push_ended(app, session_id, command_id):
    with app.app_context():
        notify.push_ended(db.session.get(ChatSession, session_id), command_id)


def test_a_command_that_ends_is_pushed_once_if_it_ran_long_enough(push_app, seed, service):
    subscriber = subscribe(push_app, seed, service)
    short = finished_command(push_app, seed, seconds=3)
    push_ended(push_app, *short)
    assert claims(push_app) == []  # 3 s: the user was probably still looking
    long = finished_command(push_app, seed, seconds=95)
    push_ended(push_app, *long)
    push_ended(push_app, *long)  # a replay of the same end
    assert claims(push_app) == [f"ended:{long[1]}"]
    [request] = service.wait_for(1)
    message = subscriber.message(request)
    assert message["title"] == "Claude Code finished"
    assert message["url"] == f"/projects/{seed.project_id}?session={long[0]}"
    assert message["tag"] == long[0]
    assert "1 min 35 s" in message["body"]


def test_a_user_who_turned_an_event_off_is_not_pushed_it(push_app, seed, service):
    subscribe(push_app, seed, service)
    with push_app.app_context():
        push.save_settings(seed.user_id, permission=True, finished=False)
    push_ended(push_app, *finished_command(push_app, seed, seconds=95))
    assert claims(push_app) == []


# -- the dashboard's live list ----------------------------------------------------------------------


def activity_of(socket, session_id):
    return [m for m in socket.received("session_activity") if m["sessionId"] == session_id]


def test_the_users_room_learns_of_permission_requests_and_their_answers(app, seed, other, sockets):
    browser, agent, bobs = sockets.browser(seed), sockets.agent(seed.token), sockets.browser(other)
    run = browser.call("execute_command", projectId=seed.project_id, command="write: a.txt hi")
    command = {"sessionId": run["sessionId"], "commandId": run["commandId"]}
    browser.wait_for("session_activity", lambda m: m["state"] == "running")
    assert agent.call("command_response", chunk(command, 1, "writing"))["ok"]
    asked = agent.call("permission_request", **command, requestId="r-1", toolName="Write", input={})
    assert asked["ok"]
    waiting = browser.wait_for("session_activity", lambda m: m["state"] == "waiting")[-1]
    assert waiting["toolName"] == "Write" and waiting["projectName"] == "alice-project"
    listed = signed_in(app, seed).get("/api/needs-you").get_json()
    assert [(m["sessionId"], m["state"]) for m in listed] == [(run["sessionId"], "waiting")]
    dashboard = signed_in(app, seed).get("/").text
    assert f'data-session-id="{run["sessionId"]}" data-state="waiting"' in dashboard

    browser.forget()
    answered = browser.call(
        "permission_response", sessionId=run["sessionId"], requestId="r-1", decision="allow"
    )
    assert answered["ok"]
    assert browser.wait_for("session_activity")[-1]["state"] == "running"
    assert agent.call("command_response", chunk(command, 2, "done", complete=True))["ok"]
    browser.wait_for("session_activity", lambda m: m["state"] == "idle")
    assert signed_in(app, seed).get("/api/needs-you").get_json() == []
    assert activity_of(bobs, run["sessionId"]) == []  # nothing of alice's reaches bob


def test_an_expired_permission_leaves_the_list(app, seed, sockets):
    browser, agent = sockets.browser(seed), sockets.agent(seed.token)
    run = browser.call("execute_command", projectId=seed.project_id, command="write: a.txt hi")
    command = {"sessionId": run["sessionId"], "commandId": run["commandId"]}
    agent.call("permission_request", **command, requestId="r-2", toolName="Write", input={})
    browser.wait_for("session_activity", lambda m: m["state"] == "waiting")
    browser.forget()
    expired = {"type": "permission_expired", "request_id": "r-2", "reason": "timeout"}
    assert agent.call("command_response", chunk(command, 1, "", event=expired))["ok"]
    browser.wait_for("session_activity", lambda m: m["state"] == "running")


def test_unreachable_push_service_errors_are_requests_errors():
    """What `send` counts on: a refused connection surfaces as a requests error, to be retried."""
    with pytest.raises(requests.RequestException):
        GuardedSession(allow_private=True).post("http://127.0.0.1:9/x", data=b"x", timeout=2)
