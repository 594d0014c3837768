"""Adding an agent on the dashboard: the one install command, copied exactly; the update mark, live."""

import requests
import socketio
from playwright.sync_api import expect

from protocol import PROTOCOL_VERSION
from tests.browser.helpers import PHONE, screenshot
from tests.browser.test_phone import assert_fits_a_phone

CLIPBOARD = ["clipboard-read", "clipboard-write"]


def signed_in_with_clipboard(ui, viewport=None):
    extra = {"viewport": viewport} if viewport else {}
    page = ui.browsers.page(base_url=ui.url, permissions=CLIPBOARD, **extra)
    return ui.sign_in(page)


def add_agent(page, name):
    page.locator("#agent-name").fill(name)
    page.get_by_role("button", name="Add agent").click()
    expect(page.get_by_test_id("pairing")).to_be_visible()


def copy(page, testid):
    """Click the Copy button of a command; returns what the clipboard then holds."""
    command = page.get_by_test_id(testid)
    button = page.locator(f"button[data-copy-target='{command.get_attribute('id')}']")
    button.click()
    expect(button).to_have_text("Copied")
    return page.evaluate("navigator.clipboard.readText()")


def test_the_copy_button_puts_exactly_the_install_command_on_the_clipboard(ui):
    page = signed_in_with_clipboard(ui)
    add_agent(page, "build-box")

    command = page.get_by_test_id("install-command").text_content()
    code = page.get_by_test_id("pairing-code").text_content()
    wheel = requests.get(ui.url + "/agent/install", timeout=10).json()["wheel"]
    assert command == (
        "python3 -m venv ~/.tether-agent"
        f" && ~/.tether-agent/bin/pip install {ui.url}{wheel}"
        f" && ~/.tether-agent/bin/tether-agent --server {ui.url} --pair {code}"
    )
    assert copy(page, "install-command") == command
    service = page.get_by_test_id("service-command").text_content()
    assert copy(page, "service-command") == service
    assert service == f"~/.tether-agent/bin/tether-agent install-service --server {ui.url}"
    screenshot(page, "add-agent-desktop.png")


def test_the_install_command_fits_a_phone(ui):
    page = signed_in_with_clipboard(ui, PHONE)
    add_agent(page, "phone-added")
    assert_fits_a_phone(page)
    assert copy(page, "install-command") == page.get_by_test_id("install-command").text_content()


def connect_agent(url, token, version):
    client = socketio.Client(reconnection=False)
    auth = {"token": token, "protocolVersion": PROTOCOL_VERSION, "name": "old", "version": version}
    client.connect(url, namespaces=["/agent"], auth=auth, transports=["websocket"], wait_timeout=10)
    return client


def test_an_agent_of_another_version_is_marked_live_with_the_command_that_updates_it(ui):
    page = ui.signed_in_page()
    item = page.locator(f"[data-agent-id='{ui.seed.agent_id}']")
    update = item.get_by_test_id("agent-outdated")
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    expect(update).to_be_hidden()

    old = connect_agent(ui.url, ui.seed.token, "0.0.1+srcold")
    try:
        expect(item).to_have_attribute("data-agent-status", "online")
        expect(update).to_be_visible()
        expect(update.locator(".agent-version")).to_have_text("0.0.1+srcold")
        wheel = requests.get(ui.url + "/agent/install", timeout=10).json()["wheel"]
        expect(update.locator("pre.command")).to_have_text(f"~/.tether-agent/bin/pip install {ui.url}{wheel}")
        screenshot(page, "agent-update-desktop.png")
    finally:
        old.disconnect()

    ui.start_agent()  # this checkout's agent: the server's own version
    expect(item).to_have_attribute("data-agent-status", "online", timeout=60_000)
    expect(update).to_be_hidden()
