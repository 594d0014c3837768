"""Helpers for the browser tests: Chromium settings, page logs, a signed-in user, chat actions."""

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field

from playwright.sync_api import Browser, BrowserContext, Page, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# Generous: on a loaded 2-core machine Claude Code takes seconds to start, not milliseconds.
ACTION_TIMEOUT_MS = 20_000
EXPECT_TIMEOUT_MS = 30_000
ANSWER_TIMEOUT_MS = 90_000

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Test runs save screenshots to a temp folder; TETHER_SCREENSHOTS=docs/screenshots refreshes the
# README's pictures (on purpose, since they show pytest's temp paths and change on every run).
SCREENSHOTS = os.environ.get("TETHER_SCREENSHOTS") or os.path.join(
    tempfile.gettempdir(), "tether-screenshots"
)

# Injected by Playwright before any page script (the page's CSP does not apply to it).
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""

# Every value data-state takes on the page, in order (set up after the page loaded).
WATCH_CONNECTION = """
() => {
  const node = document.querySelector("[data-testid=connection-status]");
  window.__connectionStates = [node.dataset.state];
  new MutationObserver(() => window.__connectionStates.push(node.dataset.state))
    .observe(node, { attributes: true, attributeFilter: ["data-state"] });
}
"""

# Resolves once the conversation has not scrolled for a few frames (wheel scrolling is animated).
SCROLL_SETTLED = """() => new Promise((resolve) => {
  const scroller = document.querySelector(".scroller");
  let last = null;
  let still = 0;
  const look = () => {
    still = scroller.scrollTop === last ? still + 1 : 0;
    last = scroller.scrollTop;
    if (still >= 5) resolve(true);
    else requestAnimationFrame(look);
  };
  look();
})"""


def slow_text(count):
    """The whole text of `slow: COUNT MS` (and of `deltas: COUNT`)."""
    return " ".join(f"w{i}" for i in range(count))


@dataclass
class PageLog:
    """What the pages of a test reported: console errors, uncaught exceptions, CSP violations."""

    console_errors: list = field(default_factory=list)
    page_errors: list = field(default_factory=list)
    csp: list = field(default_factory=list)

    def attach(self, page: Page):
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))

    def _console(self, message):
        if message.type != "error":
            return
        text = f"{message.text} ({message.location.get('url', '')})"
        self.console_errors.append(text)
        if "Content Security Policy" in message.text:
            self.csp.append(text)


class Browsers:
    """Fresh browser contexts ("browsers") for one test, each page logged, all closed at its end."""

    def __init__(self, chromium: Browser):
        self.chromium = chromium
        self.contexts: list[BrowserContext] = []
        self.log = PageLog()

    def context(self, viewport=DESKTOP, base_url=None, **kwargs) -> BrowserContext:
        context = self.chromium.new_context(viewport=viewport, base_url=base_url, **kwargs)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.set_default_navigation_timeout(ACTION_TIMEOUT_MS)
        context.add_init_script(WATCH_CSP)
        context.on("page", self.log.attach)
        self.contexts.append(context)
        return context

    def page(self, viewport=DESKTOP, base_url=None, **kwargs) -> Page:
        return self.context(viewport, base_url, **kwargs).new_page()

    def csp_violations(self):
        found = list(self.log.csp)
        for context in self.contexts:
            for page in context.pages:
                # A closed or navigating page has nothing to add.
                with contextlib.suppress(Exception):
                    found += page.evaluate("window.__cspViolations || []")
        return found

    def close(self):
        for context in self.contexts:
            context.close()


class UI:
    """The live system seen through browsers: one seeded user with an agent and a project."""

    def __init__(self, live, browsers: Browsers):
        self.live = live
        self.browsers = browsers
        self.seed = live.seed()
        self.agent = None

    @property
    def url(self):
        return self.live.url

    def start_agent(self, **kwargs):
        """The seed's agent; `extra_args=["--demo"]` starts it as `make run` does without credentials."""
        self.agent = self.live.agent(self.seed, **kwargs)
        return self.agent

    def page(self, viewport=DESKTOP) -> Page:
        return self.browsers.page(viewport, base_url=self.url)

    def sign_in(self, page: Page) -> Page:
        page.goto("/login")
        page.locator("input[name=username]").fill(self.seed.username)
        page.locator("input[name=password]").fill(self.seed.password)
        page.locator("form button[type=submit]").click()
        expect(page).to_have_url(self.url + "/")
        return page

    def signed_in_page(self, viewport=DESKTOP) -> Page:
        return self.sign_in(self.page(viewport))

    def open_chat(self, page: Page, session_id=None, wait_agent=True) -> Page:
        query = f"?session={session_id}" if session_id else ""
        page.goto(f"/projects/{self.seed.project_id}{query}")
        expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
        if wait_agent:
            expect(page.get_by_test_id("agent-status")).to_have_attribute(
                "data-agent-status", "online", timeout=ANSWER_TIMEOUT_MS
            )
        return page

    def chat(self, viewport=DESKTOP, session_id=None) -> Page:
        return self.open_chat(self.signed_in_page(viewport), session_id)


def send(page: Page, text: str, key=None):
    """Type a prompt and send it with the Send button, or with `key` (e.g. "Enter")."""
    prompt = page.get_by_test_id("prompt")
    expect(page.get_by_test_id("send")).to_be_enabled()
    prompt.fill(text)
    if key:
        prompt.press(key)
    else:
        page.get_by_test_id("send").click()


def session_id_of(page: Page) -> str:
    """The page's ?session=, once the page has put it there."""
    expect(page).to_have_url(re.compile(r"[?&]session=[^&#]+"))
    return re.search(r"[?&]session=([^&#]+)", page.url).group(1)


def answer(page: Page, index=-1):
    """The assistant message of a turn (the last by default)."""
    return page.get_by_test_id("assistant-message").nth(index)


def turn(page: Page, index=-1):
    return page.get_by_test_id("turn").nth(index)


def wait_state(turn_locator, state="done"):
    expect(turn_locator).to_have_attribute("data-state", state, timeout=ANSWER_TIMEOUT_MS)


def screenshot(page: Page, name: str):
    """Save a PNG into SCREENSHOTS (overwritten on every run)."""
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, name))


# A Markdown answer with what tends to break a narrow layout: a heading, a list, an unbroken
# long word, a long code line and a wide table.
RICH_ANSWER = """say: ## Where the time goes

The slow part is **`load_config()`**: it reads every file under `settings/` on each request.

1. Cache the parsed settings once per process.
2. Invalidate on `SIGHUP`.

Path: /home/me/code/app/settings/very/deeply/nested/directory/with/a/long/name/production_override.toml

```python
def load_config(path="settings", reload=False, *, environment="production", strict=True, cache=None):
    return {name: parse(open(os.path.join(path, name)).read()) for name in sorted(os.listdir(path))}
```

| file | parse time | size | last change | owner |
|---|---|---|---|---|
| base.toml | 41 ms | 12 KB | 2024-05-01 | platform team |
| production_override.toml | 97 ms | 30 KB | 2024-06-11 | infrastructure team |
"""


def visible_buttons_shorter_than(page: Page, minimum: int):
    """Visible buttons (and button-like submits) under `minimum` CSS pixels tall, described."""
    return page.evaluate(
        """(minimum) => [...document.querySelectorAll("button, input[type=submit], summary")]
            .filter((node) => node.getClientRects().length && getComputedStyle(node).visibility !== "hidden")
            .map((node) => [node, node.getBoundingClientRect()])
            .filter(([, box]) => box.height < minimum - 0.5)
            .map(([node, box]) => `${node.outerHTML.slice(0, 80)}: ${box.height}px`)""",
        minimum,
    )


def sticking_out(page: Page):
    """Visible elements that reach past the right edge of the viewport, except inside boxes
    that scroll sideways on purpose (code blocks, tables). Overflow clipped by an
    `overflow: hidden` ancestor counts: the reader cannot reach it."""
    return page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const scrollsSideways = (node) => {
            for (let n = node.parentElement; n && n !== document.body; n = n.parentElement) {
              const x = getComputedStyle(n).overflowX;
              if (x === "auto" || x === "scroll") return true;
            }
            return false;
          };
          return [...document.body.querySelectorAll("*")]
            .filter((node) => node.getClientRects().length && !node.closest(".visually-hidden"))
            .filter((node) => node.getBoundingClientRect().right > width + 0.5)
            .filter((node) => !scrollsSideways(node))
            .map((node) => `${node.tagName}.${node.className}: ${node.getBoundingClientRect().right}`);
        }"""
    )


def horizontal_overflow(page: Page):
    """How far the page scrolls sideways (0 when it fits)."""
    return page.evaluate("document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth")
