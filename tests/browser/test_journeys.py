"""The five journeys of a person buying Pro, in a real browser, on the demo page:
1. a free user spends the free quota and is refused with the upgrade prompt;
2. upgrade monthly with 4242..., back on the success page, Pro shown, quota lifted;
3. declined card 0002 shows the error and stays free; 3-D Secure 3155 approved, and failed;
4. portal: cancel at period end -> "Pro until"; resume; switch to yearly -> yearly shown;
5. the sandbox's test clock advanced past the period end after a cancel -> free."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from live_stack import Stack
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, text

from browser.support import Shots

pytestmark = pytest.mark.browser

CARD_OK = "4242 4242 4242 4242"
CARD_DECLINED = "4000 0000 0000 0002"
CARD_3DS = "4000 0025 0000 3155"


def new_user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sign_in(page: Page, stack: Stack, user_id: str) -> None:
    page.goto(f"{stack.app_url}/demo")
    page.fill("#user-id", user_id)
    page.click("#sign-in")
    expect(page.locator("#signed-in-as")).to_contain_text(user_id)
    expect(page.locator("#tier")).to_have_text("Free")
    expect(page.locator("#upgrade-monthly")).to_be_enabled()


def start_upgrade(page: Page, plan: str = "monthly") -> None:
    page.click(f"#upgrade-{plan}")
    page.wait_for_selector("#payment-form")  # the sandbox's hosted Checkout page


def pay(page: Page, card: str) -> None:
    page.fill("#card_number", card)
    page.click("#submit")


def expect_pro(page: Page, interval: str = "monthly") -> None:
    expect(page.locator("#banner")).to_contain_text("You're on Pro")
    expect(page.locator("#plan-summary")).to_contain_text(f"Pro ({interval}), renews")
    expect(page.locator("#tier")).to_have_text("Pro")
    expect(page.locator("#remaining")).to_have_text("Unlimited")


def subscribe(page: Page, stack: Stack, shot: Shots, user_id: str) -> None:
    sign_in(page, stack, user_id)
    start_upgrade(page)
    pay(page, CARD_OK)
    page.wait_for_url("**/demo/success?session_id=cs_*")
    expect_pro(page)
    shot("pro")


def portal_action(page: Page, action: str) -> None:
    page.click("#manage")
    page.wait_for_selector("div.subscription")  # the sandbox's hosted portal
    page.click(f"div.subscription button.{action}")
    page.wait_for_selector("div.subscription")
    page.click("#return")
    page.wait_for_url("**/demo/account")
    expect(page.locator("#banner")).to_contain_text("Back from the billing portal")


def test_free_quota_spent_shows_the_upgrade_prompt(page: Page, stack: Stack, shot: Shots) -> None:
    sign_in(page, stack, new_user("free"))
    shot("signed-in-free")
    for left in range(9, -1, -1):
        page.click("#generate")
        expect(page.locator("#generate-result")).to_have_text(
            f"Generated! {left} left this period."
        )
    expect(page.locator("#remaining")).to_have_text("0")
    page.click("#generate")
    expect(page.locator("#error")).to_have_text(
        "You've used all 10 generations of this period. Upgrade to Pro for unlimited generations."
    )
    expect(page.locator("#upgrade-prompt")).to_be_visible()
    expect(page.locator("#used")).to_have_text("10 of 10")
    shot("quota-spent")


def test_upgrade_monthly_lands_on_pro_and_lifts_the_quota(
    page: Page, stack: Stack, shot: Shots
) -> None:
    sign_in(page, stack, new_user("monthly"))
    shot("pricing")
    start_upgrade(page)
    expect(page.locator("#line_items")).to_contain_text("$19.00")
    pay(page, CARD_OK)
    page.wait_for_url("**/demo/success?session_id=cs_*")
    expect_pro(page)
    expect(page.locator("#plan-pro h3")).to_have_text("pro (current)")
    expect(page.locator("#upgrade-monthly")).to_be_disabled()
    for _ in range(11):  # past the free limit
        page.click("#generate")
        expect(page.locator("#generate-result")).to_have_text(
            "Generated! Unlimited generations left."
        )
    expect(page.locator("#used")).to_have_text("11")
    expect(page.locator("#error")).to_be_hidden()
    shot("pro-unlimited")


def test_declined_card_shows_the_error_and_stays_free(
    page: Page, stack: Stack, shot: Shots
) -> None:
    sign_in(page, stack, new_user("declined"))
    start_upgrade(page)
    pay(page, CARD_DECLINED)
    expect(page.locator("#error")).to_contain_text("Your card was declined.")
    shot("declined")
    page.click("#cancel")
    page.wait_for_url("**/demo/cancel")
    expect(page.locator("#banner")).to_have_text("Checkout canceled. You have not been charged.")
    expect(page.locator("#tier")).to_have_text("Free")
    expect(page.locator("#plan-summary")).to_have_text("Free")
    shot("still-free")


def test_3d_secure_approved_becomes_pro(page: Page, stack: Stack, shot: Shots) -> None:
    sign_in(page, stack, new_user("3ds-ok"))
    start_upgrade(page)
    pay(page, CARD_3DS)
    page.wait_for_selector("#approve")
    shot("authenticate")
    page.click("#approve")
    page.wait_for_url("**/demo/success?session_id=cs_*")
    expect_pro(page)
    shot("pro")


def test_3d_secure_failed_stays_free(page: Page, stack: Stack, shot: Shots) -> None:
    sign_in(page, stack, new_user("3ds-fail"))
    start_upgrade(page)
    pay(page, CARD_3DS)
    page.click("#fail")
    expect(page.locator("#error")).to_be_visible()
    shot("authentication-failed")
    page.click("#cancel")
    page.wait_for_url("**/demo/cancel")
    expect(page.locator("#tier")).to_have_text("Free")
    shot("still-free")


def test_portal_cancel_resume_and_switch_to_yearly(page: Page, stack: Stack, shot: Shots) -> None:
    subscribe(page, stack, shot, new_user("portal"))
    portal_action(page, "cancel")
    expect(page.locator("#plan-summary")).to_contain_text("Pro until ")
    expect(page.locator("#renewal-label")).to_have_text("Ends")
    shot("pro-until")
    portal_action(page, "resume")
    expect(page.locator("#plan-summary")).to_contain_text("Pro (monthly), renews")
    shot("resumed")
    page.click("#manage")
    page.wait_for_selector("div.subscription")
    page.locator("div.subscription select").select_option(stack.yearly)
    page.click("div.subscription button.switch")
    page.wait_for_selector("div.subscription")
    page.click("#return")
    page.wait_for_url("**/demo/account")
    expect(page.locator("#plan-summary")).to_contain_text("Pro (yearly), renews")
    expect(page.locator("#interval")).to_have_text("yearly")
    shot("yearly")


def test_test_clock_past_period_end_after_cancel_is_free(
    page: Page, stack: Stack, shot: Shots
) -> None:
    user_id = new_user("clock")
    sign_in(page, stack, user_id)
    # The user's Stripe customer lives on a test clock (as a Stripe test-mode setup would);
    # checkout reuses the stored customer.
    client = stack.gateway.client
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": int(time.time())})
    customer = client.v1.customers.create(
        {"test_clock": clock.id, "email": f"{user_id}@example.com", "metadata": {"userId": user_id}}
    )
    engine = create_engine(stack.database_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE users SET stripe_customer_id = :c WHERE id = :u"),
            {"c": customer.id, "u": user_id},
        )
    engine.dispose()
    start_upgrade(page)
    pay(page, CARD_OK)
    page.wait_for_url("**/demo/success?session_id=cs_*")
    expect_pro(page)
    portal_action(page, "cancel")
    expect(page.locator("#plan-summary")).to_contain_text("Pro until ")
    shot("pro-until")
    subscription = client.v1.subscriptions.list({"customer": customer.id}).data[0]
    period_end = subscription["items"]["data"][0]["current_period_end"]
    client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": period_end + 3600})
    stack.flush_webhooks()
    page.click("#refresh")
    expect(page.locator("#tier")).to_have_text("Free")
    expect(page.locator("#status")).to_have_text("canceled")
    expect(page.locator("#plan-summary")).to_have_text("Free")
    expect(page.locator("#interval")).to_have_text("—")
    expect(page.locator("#upgrade-monthly")).to_be_enabled()
    shot("free-after-period-end")


def test_network_and_rate_limit_errors_are_shown_in_words(
    page: Page, stack: Stack, shot: Shots
) -> None:
    """The connection fails (the browser drops the request), then the API answers 429 with
    Retry-After (answered by the browser here: this branch's API has no rate limit yet)."""
    sign_in(page, stack, new_user("errors"))
    page.route("**/api/usage/generations", lambda route: route.abort("internetdisconnected"))
    page.click("#generate")
    expect(page.locator("#error")).to_have_text(
        "Can't reach the billing server. Check your connection and try again."
    )
    shot("network-error")
    page.unroute("**/api/usage/generations")
    limited = {"error": {"code": "too_many_requests", "message": "Slow down."}}
    page.route(
        "**/api/usage/generations",
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "7", "Content-Type": "application/json"},
            body=json.dumps(limited),
        ),
    )
    page.click("#generate")
    expect(page.locator("#error")).to_have_text("Too many requests. Please try again in 7 seconds.")
    shot("rate-limited")
    page.unroute("**/api/usage/generations")
    page.click("#generate")
    expect(page.locator("#generate-result")).to_have_text("Generated! 9 left this period.")
    expect(page.locator("#error")).to_be_hidden()
