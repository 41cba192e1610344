"""The plan features of docs/features.md in a real browser, on the demo page:
1. switch monthly -> yearly after a preview of what is due now (the charge matches it);
2. seats: buy 2 at checkout, preview and confirm 3, seats shown;
3. a promotion code typed on our page discounts Stripe's checkout (a bad one is refused);
4. a trial without a card: the trial banner, then Stripe's 3-day warning shown."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from live_stack import Stack, live_stack
from playwright.sync_api import Page, expect

from browser.support import Shots
from browser.test_journeys import CARD_OK, expect_pro, new_user, pay, sign_in, start_upgrade

pytestmark = pytest.mark.browser

TRIAL_PLANS = {
    "plans": {
        "free": {"generationsPerPeriod": 10, "features": ["generate"]},
        "pro": {
            "prices": ["monthly", "yearly"],
            "generationsPerPeriod": 100,
            "features": ["generate", "hd_quality"],
            "trialDays": 14,
            "trialRequiresCard": False,
            "maxSeats": 5,
        },
    }
}


@pytest.fixture(scope="module")
def trial_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own whose pro plan starts with a 14-day trial that needs no card."""
    work = tmp_path_factory.mktemp("trial")
    plans = work / "plans.json"
    plans.write_text(json.dumps(TRIAL_PLANS))
    with live_stack(work, plans_file=str(plans)) as running:
        yield running


def money_text(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def test_switch_to_yearly_after_a_preview(page: Page, stack: Stack, shot: Shots) -> None:
    user_id = new_user("switch")
    sign_in(page, stack, user_id)
    start_upgrade(page)
    pay(page, CARD_OK)
    page.wait_for_url("**/demo/success?session_id=cs_*")
    expect_pro(page)
    expect(page.locator("#preview-switch")).to_have_text("Preview switching to yearly")
    page.click("#preview-switch")
    expect(page.locator("#preview")).to_be_visible()
    summary = page.locator("#preview-summary")
    expect(summary).to_contain_text("Due now: $")
    expect(page.locator("#preview-lines")).to_contain_text("Unused time")
    shot("preview")
    shown = re.search(r"Due now: (\$[\d,]+\.\d\d)\.", summary.inner_text())
    assert shown is not None
    page.click("#confirm-change")
    expect(page.locator("#banner")).to_contain_text("Done: yearly, 1 seat(s).")
    expect(page.locator("#interval")).to_have_text("yearly")
    expect(page.locator("#plan-summary")).to_contain_text("Pro (yearly), renews")
    shot("yearly")
    # What Stripe charged is what the preview said.
    client = stack.gateway.client
    customer = next(
        c for c in client.v1.customers.list({"limit": 100}).data if c.email and user_id in c.email
    )
    invoices = client.v1.invoices.list({"customer": customer.id}).data
    charged = [
        money_text(i.amount_due) for i in invoices if i.billing_reason == "subscription_update"
    ]
    assert charged == [shown.group(1)]


def test_seats_at_checkout_then_more_after_a_preview(page: Page, stack: Stack, shot: Shots) -> None:
    sign_in(page, stack, new_user("seats"))
    page.fill("#checkout-seats", "2")
    start_upgrade(page)
    expect(page.locator("#line_items")).to_contain_text("2")
    pay(page, CARD_OK)
    page.wait_for_url("**/demo/success?session_id=cs_*")
    expect_pro(page)
    expect(page.locator("#seats")).to_have_text("2")
    page.fill("#seats-input", "3")
    page.click("#preview-seats")
    expect(page.locator("#preview-summary")).to_contain_text("Due now: $0.00.")
    shot("seats-preview")
    page.click("#confirm-change")
    expect(page.locator("#banner")).to_contain_text("3 seat(s)")
    expect(page.locator("#seats")).to_have_text("3")
    shot("three-seats")


def test_promotion_code_typed_on_our_page(page: Page, stack: Stack, shot: Shots) -> None:
    code = f"DEMO{int(time.time() * 1000) % 10**8}"
    coupon = stack.gateway.client.v1.coupons.create({"percent_off": 50, "duration": "once"})
    stack.gateway.client.v1.promotion_codes.create(
        {"promotion": {"type": "coupon", "coupon": coupon.id}, "code": code}
    )
    sign_in(page, stack, new_user("promo"))
    page.fill("#promo-code", "NOT-A-CODE")
    page.click("#upgrade-monthly")
    expect(page.locator("#error")).to_have_text("That promotion code is not valid.")
    shot("bad-code")
    page.fill("#promo-code", code)
    start_upgrade(page)
    expect(page.locator("#total")).to_contain_text("$9.50")  # half of $19.00
    shot("discounted-checkout")
    pay(page, CARD_OK)
    page.wait_for_url("**/demo/success?session_id=cs_*")
    expect_pro(page)


def test_trial_without_a_card_shows_the_banner_then_the_warning(
    page: Page, trial_stack: Stack, shot: Shots
) -> None:
    user_id = new_user("trial")
    sign_in(page, trial_stack, user_id)
    start_upgrade(page)
    expect(page.locator("label[for=card_number]")).to_contain_text("optional during the trial")
    page.click("#submit")  # no card
    page.wait_for_url("**/demo/success?session_id=cs_*")
    expect(page.locator("#tier")).to_have_text("Pro")
    expect(page.locator("#trial-banner")).to_contain_text("Free trial until")
    shot("trialing")
    # Bring the trial's end to 3 days away: the sandbox sends Stripe's trial_will_end warning.
    client = trial_stack.gateway.client
    customer = next(
        c for c in client.v1.customers.list({"limit": 100}).data if c.email and user_id in c.email
    )
    sub = client.v1.subscriptions.list({"customer": customer.id}).data[0]
    time.sleep(1.1)
    client.v1.subscriptions.update(sub.id, {"trial_end": int(time.time()) + 3 * 86_400})
    client.v1.customers.retrieve(customer.id)  # the sandbox runs what fell due
    trial_stack.flush_webhooks()
    page.click("#refresh")
    expect(page.locator("#trial-banner")).to_contain_text("Your free trial ends on")
    expect(page.locator("#trial-banner")).to_contain_text("Add a card in Manage billing")
    shot("trial-warning")
