"""Tax, customer email sync and the credit pack of docs/features.md in a real browser, on the
demo page:
1. with Stripe Tax on (STRIPE_AUTOMATIC_TAX, STRIPE_COLLECT_BILLING_ADDRESS,
   STRIPE_TAX_ID_COLLECTION), buying Pro asks for a billing country on Stripe's page; a German
   buyer pays 19 % VAT and the invoices list shows it; the VAT number typed there is on the
   invoice;
2. a GitHub user who changed their email at GitHub signs in again: the demo shows the new
   email, and the Stripe customer has it (its billing portal shows it);
3. "Buy credits" on the demo page: a one-time Checkout, back with the credits shown, and a
   generation beyond the free quota spends one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
from live_stack import Stack, live_stack
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, text

from browser.support import Shots
from browser.test_github_signin import sign_in_with_github
from browser.test_journeys import CARD_OK, expect_pro, new_user, pay, sign_in, start_upgrade

pytestmark = pytest.mark.browser

TAX_SETTINGS = {
    "STRIPE_AUTOMATIC_TAX": "true",
    "STRIPE_COLLECT_BILLING_ADDRESS": "true",
    "STRIPE_TAX_ID_COLLECTION": "true",
}


@pytest.fixture(scope="module")
def tax_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own with Stripe Tax, tax ids and the billing address on at Checkout."""
    with live_stack(tmp_path_factory.mktemp("tax"), settings=TAX_SETTINGS) as running:
        yield running


def customer_of(stack: Stack, user_id: str) -> str:
    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT stripe_customer_id FROM users WHERE id = :u"), {"u": user_id}
            ).scalar_one()
    finally:
        engine.dispose()
    assert isinstance(found, str)
    return found


def test_tax_at_checkout_shows_on_the_invoices_list(
    page: Page, tax_stack: Stack, shot: Shots
) -> None:
    user_id = new_user("tax")
    sign_in(page, tax_stack, user_id)
    start_upgrade(page)
    expect(page.locator("label[for=country]")).to_contain_text("Billing country")
    page.fill("#country", "DE")
    page.fill("#tax_id", "DE123456789")  # STRIPE_TAX_ID_COLLECTION: a business's VAT number
    shot("billing-country-and-vat-number")
    pay(page, CARD_OK)
    page.wait_for_url("**/demo/success?session_id=cs_*")
    expect_pro(page)

    row = page.locator("#invoice-rows tr").first
    expect(page.locator("#invoice-rows tr")).to_have_count(1)
    # $19.00 plus Germany's 19 % VAT (exclusive): $3.61 tax, $22.61 in all.
    expect(row.locator("td").nth(2)).to_have_text("$22.61")
    expect(row.locator("td").nth(3)).to_have_text("$3.61")
    expect(row).to_have_class("invoice invoice-paid")
    expect(page.locator("#upcoming")).to_contain_text("Next invoice: $22.61")  # taxed too
    shot("invoice-with-vat")
    customer = tax_stack.gateway.client.v1.customers.retrieve(customer_of(tax_stack, user_id))
    assert customer.address is not None and customer.address.country == "DE"

    with page.context.expect_page() as opened:
        row.locator("a", has_text="View").click()  # Stripe's hosted invoice, in a new tab
    invoice = opened.value
    expect(invoice.locator("#customer_tax_ids")).to_have_text(
        "Customer tax ID: DE123456789 (eu_vat)"
    )
    expect(invoice.locator("#status")).to_have_text("paid")
    invoice.close()


def test_email_changed_at_github_reaches_the_stripe_customer(
    page: Page, stack: Stack, shot: Shots
) -> None:
    login = f"mail-{uuid.uuid4().hex[:8]}"
    sign_in_with_github(page, stack, shot, login)
    old_email = f"{login}@example.com"
    expect(page.locator("#email")).to_have_text(old_email)
    start_upgrade(page)
    pay(page, CARD_OK)
    page.wait_for_url("**/demo/success?session_id=cs_*")
    expect_pro(page)
    user_id = page.locator("#signed-in-as").inner_text().split("(")[-1].rstrip(")")
    customer_id = customer_of(stack, user_id)
    client = stack.gateway.client
    assert client.v1.customers.retrieve(customer_id).email == old_email

    # The person changes their primary email at GitHub, then signs in here again.
    users = requests.get(f"{stack.github_url}/_sandbox/users", timeout=10).json()["data"]
    github_id = next(user["id"] for user in users if user["login"] == login)
    new_email = f"{login}@new.example.org"
    changed = requests.post(
        f"{stack.github_url}/_sandbox/users/{github_id}/email",
        json={"email": new_email},
        timeout=10,
    )
    assert changed.status_code == 200, changed.text
    page.click("#sign-out")
    expect(page.locator("#account")).to_be_hidden()
    sign_in_with_github(page, stack, shot, login)
    expect(page.locator("#email")).to_have_text(new_email)
    expect(page.locator("#tier")).to_have_text("Pro")  # the same account, the same plan
    shot("new-email")
    assert client.v1.customers.retrieve(customer_id).email == new_email
    page.click("#manage")  # Stripe's own billing portal knows the new address too
    expect(page.locator("#customer_email")).to_have_text(new_email)
    shot("portal-shows-the-new-email")


def test_buy_a_credit_pack_and_spend_it_beyond_the_quota(
    page: Page, stack: Stack, shot: Shots
) -> None:
    sign_in(page, stack, new_user("credits"))
    expect(page.locator("#credits")).to_have_text("0")
    expect(page.locator("#buy-credits")).to_have_text("Buy 100 credits: $5.00")
    page.click("#buy-credits")
    page.wait_for_selector("#payment-form")  # the sandbox's hosted Checkout, a one-time payment
    expect(page.locator("#line_items")).to_contain_text("$5.00")
    pay(page, CARD_OK)
    page.wait_for_url("**/demo/success?purchase=credits&session_id=cs_*")
    expect(page.locator("#banner")).to_contain_text("Credits added")
    expect(page.locator("#credits")).to_have_text("100")
    expect(page.locator("#tier")).to_have_text("Free")  # a pack is not a subscription
    shot("credits-added")

    for _ in range(10):  # the free quota first
        page.click("#generate")
        expect(page.locator("#generate-result")).to_contain_text("Generated!")
    expect(page.locator("#credits")).to_have_text("100")
    page.click("#generate")  # beyond the quota: paid with a credit
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#credits")).to_have_text("99")
    expect(page.locator("#generate-result")).to_have_text(
        "Generated with a credit: 99 credits left."
    )
    expect(page.locator("#upgrade-prompt")).to_be_hidden()  # credits left: no need to upgrade
    shot("credit-spent")
