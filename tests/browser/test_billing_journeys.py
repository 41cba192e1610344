"""Dunning and invoices in a real browser, on the demo page:
1. a renewal whose charge fails shows "Fix your card" and until when Pro lasts (the grace);
   paying on the hosted invoice page with a working card clears it, and the invoices list shows
   both invoices paid; or a new card saved in the billing portal pays it and clears it;
2. a renewal that waits for 3-D Secure shows "Confirm payment"; confirming on the hosted
   invoice page clears it."""

from __future__ import annotations

import time
import uuid

import pytest
from live_stack import Stack
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, text

from browser.support import Shots

pytestmark = pytest.mark.browser

CARD_OK = "4242 4242 4242 4242"
CARD_3DS_EVERY_TIME = "4000 0027 6000 3184"


def sign_in_on_a_test_clock(page: Page, stack: Stack, prefix: str) -> tuple[str, str]:
    """A new user whose Stripe customer lives on a test clock; (customer id, clock id)."""
    user_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    page.goto(f"{stack.app_url}/demo")
    page.fill("#user-id", user_id)
    page.click("#sign-in")
    expect(page.locator("#tier")).to_have_text("Free")
    client = stack.gateway.client
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": int(time.time())})
    email = f"{user_id}@example.com"
    customer = client.v1.customers.create(
        {"test_clock": clock.id, "email": email, "metadata": {"userId": user_id}}
    )
    engine = create_engine(stack.database_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE users SET stripe_customer_id = :c, stripe_customer_email = :e WHERE id = :u"
            ),
            {"c": customer.id, "e": email, "u": user_id},
        )
    engine.dispose()
    return customer.id, clock.id


def buy_pro(page: Page, card: str) -> None:
    page.click("#upgrade-monthly")
    page.wait_for_selector("#payment-form")
    page.fill("#card_number", card)
    page.click("#submit")
    if card == CARD_3DS_EVERY_TIME:
        page.click("#approve")
    page.wait_for_url("**/demo/success?session_id=cs_*")
    expect(page.locator("#tier")).to_have_text("Pro")


def renew(stack: Stack, customer_id: str, clock_id: str) -> None:
    client = stack.gateway.client
    subscription = client.v1.subscriptions.list({"customer": customer_id}).data[0]
    period_end = subscription["items"]["data"][0]["current_period_end"]
    client.v1.test_helpers.test_clocks.advance(clock_id, {"frozen_time": period_end + 3600})
    stack.flush_webhooks()


def fail_a_renewal(page: Page, stack: Stack, prefix: str) -> None:
    """Pro bought with a working card, then the renewal's charge fails: "Fix your card" and
    the grace period (7 days by default) are shown."""
    customer_id, clock_id = sign_in_on_a_test_clock(page, stack, prefix)
    buy_pro(page, CARD_OK)
    expect(page.locator("#invoice-rows tr")).to_have_count(1)
    expect(page.locator("#upcoming")).to_contain_text("Next invoice: $")
    expect(page.locator("#payment-action")).to_be_hidden()
    expect(page.locator("#grace")).to_be_hidden()
    client = stack.gateway.client
    subscription = client.v1.subscriptions.list({"customer": customer_id}).data[0]
    client.v1.subscriptions.update(
        subscription.id, {"default_payment_method": "pm_card_chargeCustomerFail"}
    )
    renew(stack, customer_id, clock_id)

    page.click("#refresh")
    expect(page.locator("#payment-action")).to_be_visible()
    expect(page.locator("#payment-action-text")).to_contain_text("payment failed")
    expect(page.locator("#payment-action-link")).to_have_text("Fix your card")
    expect(page.locator("#status")).to_have_text("past_due")
    expect(page.locator("#tier")).to_have_text("Pro")  # the grace period: Pro for now
    expect(page.locator("#grace")).to_contain_text("You keep Pro until ")
    expect(page.locator("#invoice-rows tr")).to_have_count(2)
    expect(page.locator("#invoice-rows tr").first).to_have_class("invoice invoice-open")


def test_failed_renewal_shows_fix_your_card_until_paid(
    page: Page, stack: Stack, shot: Shots
) -> None:
    fail_a_renewal(page, stack, "dunning")
    shot("fix-your-card")

    page.click("#payment-action-link")
    page.wait_for_selector("#payment-form")  # the sandbox's hosted invoice page
    page.fill("#card_number", CARD_OK)
    page.click("#submit")
    expect(page.locator("#status")).to_have_text("paid")
    stack.flush_webhooks()
    page.goto(f"{stack.app_url}/demo")
    expect(page.locator("#status")).to_have_text("active")
    expect(page.locator("#payment-action")).to_be_hidden()
    expect(page.locator("#invoice-rows tr.invoice-paid")).to_have_count(2)
    shot("paid-again")


def test_a_new_card_in_the_portal_clears_fix_your_card(
    page: Page, stack: Stack, shot: Shots
) -> None:
    fail_a_renewal(page, stack, "dunning-portal")
    page.click("#manage")
    page.wait_for_selector("#payment-method-form")  # the sandbox's hosted portal
    page.fill("#new_card_number", CARD_OK)
    shot("new-card-in-the-portal")
    page.click("#update-payment-method")  # the new default card pays the open invoice at once
    page.wait_for_selector("#payment-method-form")
    page.click("#return")
    page.wait_for_url("**/demo/account")
    stack.flush_webhooks()
    page.click("#refresh")
    expect(page.locator("#status")).to_have_text("active")
    expect(page.locator("#payment-action")).to_be_hidden()
    expect(page.locator("#grace")).to_be_hidden()
    expect(page.locator("#invoice-rows tr.invoice-paid")).to_have_count(2)
    shot("paid-with-the-new-card")


def test_renewal_waiting_for_3d_secure_shows_confirm_payment(
    page: Page, stack: Stack, shot: Shots
) -> None:
    customer_id, clock_id = sign_in_on_a_test_clock(page, stack, "dunning-3ds")
    buy_pro(page, CARD_3DS_EVERY_TIME)
    renew(stack, customer_id, clock_id)

    page.click("#refresh")
    expect(page.locator("#payment-action-link")).to_have_text("Confirm payment")
    expect(page.locator("#payment-action-text")).to_contain_text("confirm")
    shot("confirm-payment")
    page.click("#payment-action-link")
    page.click("#authenticate")  # the hosted invoice page's 3-D Secure step
    expect(page.locator("#status")).to_have_text("paid")
    stack.flush_webhooks()
    page.goto(f"{stack.app_url}/demo")
    expect(page.locator("#status")).to_have_text("active")
    expect(page.locator("#payment-action")).to_be_hidden()
    shot("confirmed")
