"""Web Push through the whole system: the real server and agent, Claude Code asking for a permission
and ending its command, and a push service stand-in on loopback (tests/push_service.py) that
decrypts every message with the subscriber's private key and checks its VAPID signature."""

import re

from app import db
from app.models import NotificationSent, PushSubscription
from tests.harness import wait_until
from tests.push_service import Subscriber, check_vapid

META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def push_system(live_with, **settings):
    """The live system allowed to push to loopback, pushing every command's end."""
    return live_with(TETHER_PUSH_ALLOW_PRIVATE="1", TETHER_PUSH_LONG_RUN_SECONDS="0", **settings)


def subscribe(live, browser, endpoint):
    """What a page does: POST its PushSubscription with the page's CSRF token."""
    subscriber = Subscriber()
    token = META_TOKEN.search(browser.http.get(live.url + "/").text).group(1)
    body = subscriber.subscription(endpoint)
    reply = browser.http.post(live.url + "/push/subscriptions", json=body, headers={"X-CSRFToken": token})
    assert reply.status_code == 201, reply.text
    return subscriber


def rows(live, model):
    with live.app.app_context():
        found = db.session.scalars(db.select(model)).all()
        db.session.remove()
        return found


def allow(browser, request):
    reply = browser.call(
        "permission_response",
        {"sessionId": request["sessionId"], "requestId": request["requestId"], "decision": "allow"},
    )
    assert reply["ok"], reply


def test_one_push_per_event_through_a_burst_a_reconnect_and_a_server_restart(live_with, service):
    # The agent may take a while to find the restarted server: its command must wait for it.
    live = push_system(live_with, TETHER_AGENT_LOST_GRACE="60")
    seed, [browser] = live.ready()
    subscriber = subscribe(live, browser, service.endpoint("ok"))
    server_key = browser.http.get(live.url + "/push/key").json()["publicKey"]

    # A burst of results, then a permission request.
    reply = browser.run(seed.project_id, "deltas: 300\nwrite: pushed.txt hello from tether")
    session_id = reply["sessionId"]
    wait_until(lambda: browser.permissions, message="the permission request")
    [asked] = service.wait_for(1)
    _, vapid_key = check_vapid(asked.headers["authorization"], service.url)
    assert vapid_key == server_key
    assert asked.headers["content-encoding"] == "aes128gcm"
    assert asked.headers["urgency"] == "high" and asked.headers["topic"] == session_id
    message = subscriber.message(asked)
    assert message["title"] == "Approval needed: Write"
    assert message["body"].startswith("alice-project · ") and "pushed.txt" in message["body"]
    assert message["url"] == f"/projects/{seed.project_id}?session={session_id}"
    assert message["tag"] == session_id

    # The browser's socket drops and comes back: the pending request is shown to it again.
    seen = len(browser.permissions)
    browser.drop_connection()
    wait_until(lambda: len(browser.permissions) > seen, message="the request shown again after a reconnect")

    # The server restarts: the agent reconnects and asks again, the browser is shown it again.
    seen = len(browser.permissions)
    live.restart_server()
    wait_until(lambda: live.latest_agent.output().count("connected to") == 2, message="the agent back")
    wait_until(lambda: len(browser.permissions) > seen, message="the request shown again after a restart")
    allow(browser, browser.permissions[-1])
    browser.wait_final(reply["commandId"])

    # A second command in a new session: its end comes after anything the first one could resend.
    marker = browser.run(seed.project_id, "say: the last word")
    browser.wait_final(marker["commandId"])
    received = service.wait_for(3)
    messages = [subscriber.message(request) for request in received]
    events = sorted((m["tag"], m["title"]) for m in messages)
    assert events == sorted(
        [
            (session_id, "Approval needed: Write"),
            (session_id, "Claude Code finished"),
            (marker["sessionId"], "Claude Code finished"),
        ]
    ), messages
    for request in received:
        check_vapid(request.headers["authorization"], service.url)  # the same key after the restart
    assert len(rows(live, NotificationSent)) == 3


def test_a_subscription_the_push_service_calls_gone_is_deleted(live_with, service):
    live = push_system(live_with)
    seed, [browser] = live.ready()
    subscribe(live, browser, service.endpoint("gone"))
    kept = subscribe(live, browser, service.endpoint("ok"))
    browser.run(seed.project_id, "write: gone.txt bye")
    service.wait_for(1, "gone")
    [asked] = service.wait_for(1, "ok")
    assert kept.message(asked)["title"] == "Approval needed: Write"
    wait_until(lambda: len(rows(live, PushSubscription)) == 1, message="the expired subscription deleted")
    assert rows(live, PushSubscription)[0].endpoint.startswith(service.url + "/ok/")


def test_a_push_service_that_hangs_holds_up_neither_the_stream_nor_other_pushes(live_with, service):
    live = push_system(live_with, TETHER_PUSH_TIMEOUT="120")
    seed, [browser] = live.ready()
    subscribe(live, browser, service.endpoint("hang"))
    healthy = subscribe(live, browser, service.endpoint("ok"))

    reply = browser.run(seed.project_id, "write: slow-push.txt x\ndeltas: 2000")
    wait_until(lambda: browser.permissions, message="the permission request")
    service.wait_for(1, "hang")  # that push now waits for an answer that does not come
    allow(browser, browser.permissions[0])
    final = browser.wait_final(reply["commandId"])

    assert final["status"] == "complete"
    results = browser.session_results(reply["sessionId"])
    assert [r["seq"] for r in results] == list(range(1, len(results) + 1))
    assert " ".join(f"w{i}" for i in range(2000)) in browser.text_of(reply["commandId"])
    ended = service.wait_for(2, "ok")
    assert [healthy.message(r)["title"] for r in ended] == ["Approval needed: Write", "Claude Code finished"]
    # The hanging service was sent both messages too, each holding one sender task, unanswered.
    assert len(service.wait_for(2, "hang")) == 2 and not service.release.is_set()
