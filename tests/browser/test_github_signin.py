"""Sign in with GitHub on the demo page, in Chromium, against the GitHub stand-in: sign in,
buy Pro with 4242..., see Pro; with no hand-minted token anywhere (no /demo/token call,
nothing in localStorage, no token in any URL, the refresh cookie out of the page's reach);
after a reload the session is renewed through the cookie; sign-out ends it. And a person who
cancels at GitHub lands back with the reason in words."""

from __future__ import annotations

import uuid

import pytest
from live_stack import Stack
from playwright.sync_api import Page, Request, expect

from browser.support import Shots
from browser.test_journeys import CARD_OK, expect_pro, pay, start_upgrade

pytestmark = pytest.mark.browser


def sign_in_with_github(page: Page, stack: Stack, shot: Shots, login: str) -> None:
    page.goto(f"{stack.app_url}/demo")
    expect(page.locator("#github-sign-in")).to_be_visible()
    page.click("#github-sign-in")
    page.wait_for_selector("#authorize-form")  # the stand-in's authorize page
    assert page.url.startswith(f"{stack.github_url}/login/oauth/authorize?")
    page.fill("#new-login", login)
    shot("github-authorize")
    page.click("#authorize")
    page.wait_for_url(f"{stack.app_url}/demo")
    expect(page.locator("#signed-in-as")).to_contain_text(f"Signed in with GitHub as {login}")


def test_sign_in_with_github_buy_pro_and_see_it(page: Page, stack: Stack, shot: Shots) -> None:
    login = f"gh-{uuid.uuid4().hex[:8]}"
    urls: list[str] = []

    def note(request: Request) -> None:
        urls.append(request.url)

    page.on("request", note)
    sign_in_with_github(page, stack, shot, login)
    expect(page.locator("#signed-in-as")).to_contain_text("(github:")
    expect(page.locator("#tier")).to_have_text("Free")
    expect(page.locator("#github-sign-in")).to_be_hidden()
    shot("signed-in-free")

    start_upgrade(page)
    pay(page, CARD_OK)
    page.wait_for_url("**/demo/success?session_id=cs_*")
    expect_pro(page)  # the page reloaded on its return from Checkout: renewed via the cookie
    shot("pro")

    # No hand-minted token: the dev-token route was never called, the page stored nothing,
    # the refresh cookie is httpOnly, and no URL the browser opened carried a token.
    assert not [url for url in urls if "/demo/token" in url]
    assert page.evaluate("Object.keys(localStorage)") == []
    assert "billing_refresh" not in page.evaluate("document.cookie")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["billing_refresh"]["httpOnly"] and cookies["billing_refresh"]["path"] == "/auth"
    assert not [url for url in urls if "accessToken" in url or "billing_refresh" in url]
    assert not [url for url in urls if "eyJ" in url]  # no JWT in any URL

    page.reload()
    expect(page.locator("#signed-in-as")).to_contain_text(f"Signed in with GitHub as {login}")
    expect(page.locator("#tier")).to_have_text("Pro")

    page.click("#sign-out")
    expect(page.locator("#signed-in-as")).to_have_text("")
    expect(page.locator("#account")).to_be_hidden()
    page.reload()
    expect(page.locator("#github-sign-in")).to_be_visible()
    expect(page.locator("#account")).to_be_hidden()
    shot("signed-out")


def test_cancelling_at_github_says_so(page: Page, stack: Stack, shot: Shots) -> None:
    page.goto(f"{stack.app_url}/demo")
    page.click("#github-sign-in")
    page.wait_for_selector("#authorize-form")
    page.click("#cancel")
    expect(page).to_have_url(f"{stack.app_url}/demo")  # signinError taken off the address
    expect(page.locator("#error")).to_have_text("You cancelled signing in with GitHub.")
    expect(page.locator("#github-sign-in")).to_be_visible()
    shot("cancelled")
