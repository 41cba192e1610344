"""Browser tests: Debian's Chromium (headless) driven by Playwright for Python against the app
under gunicorn with the Stripe sandbox as its own process (tests/live_stack.py). Each step
saves a screenshot in tests/browser/screenshots/. Run with `make test-browser`."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from live_stack import Stack, live_stack
from playwright.sync_api import Browser, Page, expect, sync_playwright

from browser.support import SCREENSHOTS, Shots

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Bounds for one step (an action, or an expectation to come true); generous because CI shares
# its CPUs. The whole run is bounded by `timeout` in `make test-browser`.
STEP_TIMEOUT_MS = 30_000
expect.set_options(timeout=20_000)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with live_stack(tmp_path_factory.mktemp("live")) as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 800}, locale="en-US")
    context.set_default_timeout(STEP_TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def shot(page: Page, request: pytest.FixtureRequest) -> Shots:
    SCREENSHOTS.mkdir(exist_ok=True)
    return Shots(page, request.node.name.removeprefix("test_"))
