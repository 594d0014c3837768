"""Notifications in Chromium: the service worker shows pushes (a headless Chromium has no push
service, so the test delivers each push to the service worker through the DevTools protocol's
ServiceWorker.deliverPushMessage, as the push service would), the chat page's own notification
while its tab is hidden, the dashboard's "needs you" list and the tab's title, all live."""

import json
import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import ANSWER_TIMEOUT_MS, PHONE, UI, send, session_id_of, turn, wait_state
from tests.browser.test_phone import assert_fits_a_phone
from tests.conftest import make_command
from tests.push_service import Subscriber

NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.ready;
  return (await registration.getNotifications()).map(
    (n) => ({title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url}));
}"""

# A headless Chromium shows every page as visible; this makes one page say it is hidden.
HIDDEN_PAGE = """
Object.defineProperty(Document.prototype, "hidden", {
  configurable: true, get: () => window.__hidden === true});
Object.defineProperty(Document.prototype, "visibilityState", {
  configurable: true, get: () => (window.__hidden === true ? "hidden" : "visible")});
"""


@pytest.fixture
def push_ui(live_with, browsers):
    """The live system allowed to push to a stand-in on loopback, seen through browsers."""
    return UI(live_with(TETHER_PUSH_ALLOW_PRIVATE="1", TETHER_PUSH_LONG_RUN_SECONDS="0"), browsers)


def notifying_page(ui, path="/", viewport=None):
    """A signed-in page of a browser that allows notifications, with the service worker running."""
    sizes = {"viewport": viewport} if viewport else {}
    context = ui.browsers.context(base_url=ui.url, permissions=["notifications"], **sizes)
    page = ui.sign_in(context.new_page())
    page.goto(path)
    assert page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)") == ui.url + "/"
    return page


def deliver_push(page, data):
    """Hand `data` to the service worker as its push service would (a `push` event)."""
    cdp = page.context.new_cdp_session(page)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
    cdp.send("ServiceWorker.enable")
    origin = page.evaluate("location.origin")
    for _ in range(200):  # the registrations arrive as events right after enable
        found = [r for r in registrations if r["scopeURL"] == origin + "/" and not r["isDeleted"]]
        if found:
            break
        page.wait_for_timeout(25)
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": origin, "registrationId": found[0]["registrationId"], "data": data},
    )
    cdp.detach()


REDELIVER_EVERY = 3.0  # seconds


def push_until_shown(page, data, tag):
    deliver_push(page, data)
    return wait_notification(page, tag, redeliver=lambda: deliver_push(page, data))


def notifications(page):
    return page.evaluate(NOTIFICATIONS)


def wait_notification(page, tag, timeout=ANSWER_TIMEOUT_MS / 1000, redeliver=None):
    """The notification with `tag`, once shown (getNotifications is asynchronous: polled here).

    `redeliver` hands the push over again every few seconds: on a loaded machine Chromium can
    drop a push that DevTools delivers while the worker starts, and it also takes a while to
    forget a page that has closed. A push service retries too; the same tag replaces, never adds.
    """
    deadline = time.monotonic() + timeout
    next_delivery = time.monotonic() + REDELIVER_EVERY
    while time.monotonic() < deadline:
        shown = [n for n in notifications(page) if n["tag"] == tag]
        if shown:
            return shown[0]
        if redeliver and time.monotonic() > next_delivery:
            redeliver()
            next_delivery = time.monotonic() + REDELIVER_EVERY
        page.wait_for_timeout(50)
    raise AssertionError(f"no notification tagged {tag} within {timeout:.0f} s: {notifications(page)}")


def test_the_service_worker_shows_a_push_unless_a_page_shows_that_session(ui):
    watched, _ = make_command(ui.live.app, ui.seed, state="done", chunks=1)
    other, _ = make_command(ui.live.app, ui.seed, state="done", chunks=1)
    dashboard = notifying_page(ui)
    chat = dashboard.context.new_page()
    chat.goto(f"/projects/{ui.seed.project_id}?session={watched}")
    expect(chat.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")

    def message(session_id, title):
        url = f"/projects/{ui.seed.project_id}?session={session_id}"
        return json.dumps({"title": title, "body": "alice-project", "url": url, "tag": session_id})

    deliver_push(dashboard, message(watched, "Allow Bash?"))  # its page is open and visible
    shown = push_until_shown(dashboard, message(other, "Allow Write?"), other)
    assert shown == {
        "title": "Allow Write?",
        "body": "alice-project",
        "tag": other,
        "url": f"{ui.url}/projects/{ui.seed.project_id}?session={other}",
    }
    assert [n["tag"] for n in notifications(dashboard)] == [other]

    chat.close()  # nobody looks at the first session any more
    assert push_until_shown(dashboard, message(watched, "Allow Bash?"), watched)["title"] == "Allow Bash?"


def test_the_test_button_reaches_the_service_worker_through_the_push_service(push_ui, service):
    page = notifying_page(push_ui, "/account", viewport=PHONE)
    expect(page.get_by_test_id("push-status")).not_to_have_attribute("data-state", "unknown")
    assert_fits_a_phone(page)
    # A headless Chromium cannot subscribe (no push service): subscribe a stand-in browser for
    # this user, then hand what the push service received to this page's service worker.
    subscriber = Subscriber()
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    reply = page.request.post(
        "/push/subscriptions",
        data=subscriber.subscription(service.endpoint("ok")),
        headers={"X-CSRFToken": token},
    )
    assert reply.status == 201, reply.text()

    page.get_by_test_id("push-test").click()
    sent = re.compile("Test notification sent to your browser")
    expect(page.get_by_test_id("push-message")).to_have_text(sent)
    [request] = service.wait_for(1)
    shown = push_until_shown(page, subscriber.decrypt(request.body).decode(), "tether-test")
    assert (shown["title"], shown["body"]) == ("Tether", "Notifications reach this browser.")

    page.get_by_test_id("push-test").click()  # at once again: refused, and said so
    expect(page.get_by_test_id("push-message")).to_have_text(re.compile("a moment ago"))


def hidden_chat(ui):
    """A chat page that allows notifications and can be made to say it is hidden."""
    ui.start_agent()
    context = ui.browsers.context(base_url=ui.url, permissions=["notifications"])
    context.add_init_script(HIDDEN_PAGE)
    page = ui.open_chat(ui.sign_in(context.new_page()))
    page.evaluate("navigator.serviceWorker.ready")
    return page


def hide(page):
    page.evaluate("window.__hidden = true; document.dispatchEvent(new Event('visibilitychange'))")


def assert_notified_of_the_write(page, session_id):
    shown = wait_notification(page, session_id)
    assert shown["title"] == "Approval needed: Write"
    assert "noticed.txt" in shown["body"]
    assert shown["url"] == page.url


def test_a_hidden_chat_page_notifies_of_a_permission_request(ui):
    page = hidden_chat(ui)
    hide(page)
    send(page, "write: noticed.txt while you were away")
    assert_notified_of_the_write(page, session_id_of(page))


def test_a_request_still_waiting_when_the_tab_is_hidden_is_notified_then(ui):
    page = hidden_chat(ui)
    send(page, "write: noticed.txt while you were away")
    expect(page.get_by_test_id("permission-request")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    assert notifications(page) == []  # the user is looking
    hide(page)
    assert_notified_of_the_write(page, session_id_of(page))


def test_needs_you_and_the_tab_title_follow_a_permission_request_live(ui):
    ui.start_agent()
    dashboard = ui.signed_in_page(PHONE)
    expect(dashboard.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    waiting = dashboard.locator("[data-testid=needs-you] [data-session-id]")
    running = dashboard.locator("[data-testid=running] [data-session-id]")
    expect(waiting).to_have_count(0)

    chat = ui.chat()  # another browser of the same user
    plain_title = chat.title()
    plain_icon = chat.locator("link[rel=icon]").get_attribute("href")
    send(chat, "write: needed.txt yes\nslow: 40 100")
    session_id = session_id_of(chat)
    expect(waiting).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    expect(waiting).to_have_attribute("data-session-id", session_id)
    expect(waiting).to_contain_text("Allow Write?")
    expect(waiting).to_contain_text("alice-project · laptop")
    expect(running).to_have_count(0)
    assert_fits_a_phone(dashboard)
    expect(chat).to_have_title(f"(1) Approval needed · {plain_title}")
    assert chat.locator("link[rel=icon]").get_attribute("href") != plain_icon

    chat.get_by_test_id("permission-request").get_by_test_id("allow").click()
    expect(waiting).to_have_count(0)
    expect(running).to_have_attribute("data-session-id", session_id)  # it streams for 4 s more
    expect(running).to_contain_text(re.compile(r"alice-project · laptop.*for \d+ (s|min)"))
    expect(chat).to_have_title(plain_title)
    assert chat.locator("link[rel=icon]").get_attribute("href") == plain_icon
    wait_state(turn(chat))
    expect(running).to_have_count(0)
    expect(dashboard.get_by_text("Nothing waits for you.")).to_be_visible()
