"""/api/docs renders the whole document in Chromium with nothing fetched from elsewhere."""

from __future__ import annotations

import pytest
from live_stack import Stack
from playwright.sync_api import Page, Request

from browser.support import Shots

pytestmark = pytest.mark.browser


def test_docs_render_offline(page: Page, stack: Stack, shot: Shots) -> None:
    outside: list[str] = []

    def note(request: Request) -> None:
        if not request.url.startswith(stack.app_url):
            outside.append(request.url)

    page.on("request", note)
    page.goto(f"{stack.app_url}/api/docs")
    page.wait_for_selector(".opblock")
    document = page.request.get(f"{stack.app_url}/api/openapi.json").json()
    operations = sum(len(methods) for methods in document["paths"].values())
    assert page.locator(".opblock").count() == operations
    assert outside == []
    shot("docs")
