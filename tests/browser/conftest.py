"""Browser fixtures: Debian's Chromium driven by Playwright (sync API) against the live system.

chromium   one headless Chromium for the whole run (fails, never skips, without /usr/bin/chromium)
browsers   fresh browser contexts for one test; the test fails at teardown on any uncaught
           exception or CSP violation in its pages
ui         the live system (tests/conftest.py `live`) with a seeded user, seen through browsers
"""

import os

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS, EXPECT_TIMEOUT_MS, UI, Browsers
from tests.lanes import starts

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture(scope="session")
@starts("browser")
def chromium():
    """One headless Chromium for the whole run: Debian's, never a downloaded one."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM} (apt install chromium)", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browsers(chromium):
    contexts = Browsers(chromium)
    yield contexts
    violations = contexts.csp_violations()
    contexts.close()
    assert not contexts.log.page_errors, f"uncaught exceptions in the pages: {contexts.log.page_errors}"
    assert not violations, f"Content Security Policy violations: {violations}"


@pytest.fixture
def ui(live, browsers):
    return UI(live, browsers)
