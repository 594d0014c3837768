"""The dashboard follows the agent's presence live, without a reload."""

from playwright.sync_api import expect


def test_agent_goes_online_and_offline_live(ui):
    page = ui.signed_in_page()
    agent = page.locator(f"[data-agent-id='{ui.seed.agent_id}']")
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    expect(agent).to_have_attribute("data-agent-status", "offline")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    process = ui.start_agent()
    expect(agent).to_have_attribute("data-agent-status", "online", timeout=60_000)
    expect(agent.locator(".state")).to_have_text("online")
    expect(agent.locator(".agent-detail")).to_contain_text("connected just now")  # not "never connected"

    process.stop()
    expect(agent).to_have_attribute("data-agent-status", "offline", timeout=60_000)
    expect(agent.locator(".state")).to_have_text("offline")
    expect(agent.locator(".agent-detail")).to_contain_text("last seen just now")
    assert page.evaluate("window.__sameDocument") is True
