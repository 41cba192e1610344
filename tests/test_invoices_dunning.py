"""Dunning the user can see, invoices, tax at Checkout and the customer's email, end to end on
the sandbox: a renewal whose charge fails (or waits for 3-D Secure) puts an action in /api/me
with the invoice's hosted page, paying there clears it; GET /api/invoices lists what Stripe's
webhooks told us; GET /api/invoices/upcoming is Stripe's preview, cached."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from support import (
    CARD_OK,
    Billing,
    auth_headers,
    pay_hosted_checkout,
    portal_action,
    post_webhook,
    subscribe,
)

from app.extensions import db
from app.models import Invoice, User

HOUR = 3600
DAY_MS = 86_400_000
CARD_3DS_EVERY_TIME = "4000 0027 6000 3184"


def me(client: FlaskClient, user: str) -> dict[str, Any]:
    reply = client.get("/api/me", headers=auth_headers(user))
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


def invoices(client: FlaskClient, user: str) -> list[dict[str, Any]]:
    reply = client.get("/api/invoices", headers=auth_headers(user))
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()["invoices"]


def customer_on_a_test_clock(app: Flask, billing: Billing, user: str) -> str:
    """The user's Stripe customer lives on a test clock (checkout reuses the stored customer)."""
    stripe = billing.gateway.client
    clock = stripe.v1.test_helpers.test_clocks.create({"frozen_time": int(time.time())})
    email = f"{user}@example.com"
    customer = stripe.v1.customers.create(
        {"test_clock": clock.id, "email": email, "metadata": {"userId": user}}
    )
    client = app.test_client()
    assert client.get("/api/me", headers=auth_headers(user)).status_code == 200  # the user row
    with app.app_context():
        db.session.execute(
            update(User)
            .where(User.id == user)
            .values(stripe_customer_id=customer.id, stripe_customer_email=email)
        )
        db.session.commit()
    return clock.id


def renew(billing: Billing, clock_id: str, customer_id: str) -> None:
    """Move the clock past the end of the period: Stripe renews and charges."""
    stripe = billing.gateway.client
    sub = stripe.v1.subscriptions.list({"customer": customer_id}).data[0]
    period_end = sub["items"].data[0].current_period_end
    stripe.v1.test_helpers.test_clocks.advance(clock_id, {"frozen_time": period_end + HOUR})
    billing.wait_for_webhooks()


@pytest.mark.parametrize("deliveries", ["in order", "duplicated and shuffled"])
def test_failed_renewal_shows_fix_payment_until_the_invoice_is_paid(
    app: Flask, client: FlaskClient, billing: Billing, deliveries: str
) -> None:
    user = "dunning-fail"
    if deliveries != "in order":
        billing.sandbox.configure(duplicate_deliveries=True, shuffle_deliveries=True)
    clock_id = customer_on_a_test_clock(app, billing, user)
    subscribe(client, billing, user)
    start = me(client, user)
    customer = start["user"]["stripeCustomerId"]
    assert start["action"] is None
    [first] = invoices(client, user)
    assert first["status"] == "paid" and first["amountPaid"] == first["amountDue"] > 0
    assert first["hostedInvoiceUrl"].startswith(billing.sandbox.url)
    assert first["invoicePdf"].endswith("/pdf") and first["currency"] == "usd"
    assert first["periodEnd"] - first["periodStart"] > 27 * DAY_MS

    # The card on the subscription now fails every charge; the renewal's charge fails.
    stripe = billing.gateway.client
    sub_id = stripe.v1.subscriptions.list({"customer": customer}).data[0].id
    stripe.v1.subscriptions.update(sub_id, {"default_payment_method": "pm_card_chargeCustomerFail"})
    renew(billing, clock_id, customer)

    failed = me(client, user)
    listed = invoices(client, user)
    assert [i["status"] for i in listed] == ["open", "paid"]  # newest first
    action = failed["action"]
    assert action["type"] == "fix_payment"
    assert action["invoiceId"] == listed[0]["id"]
    assert action["hostedInvoiceUrl"] == listed[0]["hostedInvoiceUrl"]
    assert action["since"] >= first["periodEnd"]  # Stripe's time of the failure (the clock's)
    assert (failed["user"]["status"], failed["user"]["tier"]) == ("past_due", "pro")
    # Pro for a finite grace (7 days by default), and the front end can say until when.
    granted = client.get("/api/me/entitlements", headers=auth_headers(user)).get_json()
    assert abs(granted["accessEndsAt"] - (time.time() * 1000 + 7 * DAY_MS)) < 120_000

    # The user follows the link and pays with a working card: the action is gone.
    paid = requests.post(action["hostedInvoiceUrl"], data={"card_number": CARD_OK}, timeout=10)
    assert paid.status_code == 200 and "paid" in paid.text
    billing.wait_for_webhooks()
    recovered = me(client, user)
    assert recovered["action"] is None
    assert (recovered["user"]["status"], recovered["user"]["tier"]) == ("active", "pro")
    assert [i["status"] for i in invoices(client, user)] == ["paid", "paid"]
    with app.app_context():  # each invoice once, however often its events came
        assert db.session.scalar(select(func.count()).select_from(Invoice)) == 2


def test_renewal_waiting_for_3d_secure_asks_to_confirm_the_payment(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    user = "dunning-3ds"
    clock_id = customer_on_a_test_clock(app, billing, user)
    created = client.post(
        "/api/create-checkout-session", json={"plan": "monthly"}, headers=auth_headers(user)
    )
    session_url = created.get_json()["session"]["url"]
    challenge = pay_hosted_checkout(session_url, CARD_3DS_EVERY_TIME)
    assert challenge.status_code == 200 and "authenticate" in challenge.text
    approved = requests.post(
        f"{session_url}/authenticate", data={"action": "approve"}, allow_redirects=False, timeout=10
    )
    assert approved.status_code == 303
    billing.wait_for_webhooks()
    customer = me(client, user)["user"]["stripeCustomerId"]

    renew(billing, clock_id, customer)
    waiting = me(client, user)
    action = waiting["action"]
    assert action["type"] == "confirm_payment"
    assert waiting["user"]["status"] == "past_due"
    page = requests.get(action["hostedInvoiceUrl"], timeout=10)
    assert 'id="authenticate"' in page.text

    confirmed = requests.post(
        action["hostedInvoiceUrl"], data={"action": "authenticate"}, timeout=10
    )
    assert confirmed.status_code == 200 and "paid" in confirmed.text
    billing.wait_for_webhooks()
    done = me(client, user)
    assert done["action"] is None and done["user"]["status"] == "active"


def _invoice_event(
    event_id: str, kind: str, created: int, status: str, **fields: Any
) -> dict[str, Any]:
    invoice = {
        "id": "in_hand_made_1",
        "object": "invoice",
        "customer": "cus_hand_made",
        "status": status,
        "number": "HM-0001",
        "currency": "eur",
        "amount_due": 1200,
        "amount_paid": 1200 if status == "paid" else 0,
        "total": 1200,
        "total_taxes": [{"amount": 200, "tax_behavior": "exclusive", "taxability_reason": None}],
        "billing_reason": "subscription_cycle",
        "created": created - 5,
        "hosted_invoice_url": "https://invoice.stripe.com/i/hand_made",
        "invoice_pdf": "https://pay.stripe.com/invoice/hand_made/pdf",
        "period_start": created - 100,
        "period_end": created - 5,
        "parent": {"subscription_details": {"subscription": "sub_hand_made"}},
        "lines": {"data": []},
        **fields,
    }
    return {
        "id": event_id,
        "object": "event",
        "type": kind,
        "created": created,
        "data": {"object": invoice},
    }


def test_a_late_payment_failed_does_not_undo_the_paid_invoice_and_tax_is_shown(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    user = "dunning-order"
    assert client.get("/api/me", headers=auth_headers(user)).status_code == 200
    with app.app_context():
        db.session.execute(
            update(User)
            .where(User.id == user)
            .values(stripe_customer_id="cus_hand_made", stripe_customer_email=f"{user}@example.com")
        )
        db.session.commit()
    now = int(time.time())
    secret = billing.webhook_secret
    paid = _invoice_event("evt_hm_paid", "invoice.paid", now, "paid")
    failed = _invoice_event("evt_hm_failed", "invoice.payment_failed", now - 60, "open")
    for event in (paid, failed, paid):  # the failure arrives after the later payment; a replay
        assert post_webhook(client, event, secret).status_code == 200
    assert me(client, user)["action"] is None
    [invoice] = invoices(client, user)
    assert (invoice["status"], invoice["amountPaid"], invoice["amountTax"]) == ("paid", 1200, 200)
    assert invoice["created"] == (now - 5) * 1000

    # In order, a failure then its payment: the action shows, then is cleared.
    second = {"id": "in_hand_made_2", "number": "HM-0002"}
    failed2 = _invoice_event("evt_hm_failed2", "invoice.payment_failed", now + 10, "open")
    failed2["data"]["object"].update(second)
    post_webhook(client, failed2, secret)
    assert me(client, user)["action"]["invoiceId"] == "in_hand_made_2"
    paid2 = _invoice_event("evt_hm_paid2", "invoice.paid", now + 20, "paid")
    paid2["data"]["object"].update(second)
    post_webhook(client, paid2, secret)
    assert me(client, user)["action"] is None
    # Nobody else sees them.
    assert invoices(client, "dunning-someone-else") == []


def test_upcoming_invoice_is_stripes_preview_asked_once(
    client: FlaskClient, billing: Billing
) -> None:
    user = "upcoming-user"
    none_yet = client.get("/api/invoices/upcoming", headers=auth_headers(user))
    assert none_yet.status_code == 200 and none_yet.get_json() == {"upcoming": None}
    subscribe(client, billing, user)
    before = len(billing.stripe_calls())
    first = client.get("/api/invoices/upcoming", headers=auth_headers(user)).get_json()["upcoming"]
    again = client.get("/api/invoices/upcoming", headers=auth_headers(user)).get_json()["upcoming"]
    previews = [c for c in billing.stripe_calls()[before:] if c["path"].endswith("create_preview")]
    assert len(previews) == 1  # cached: never one Stripe call per page load
    assert first == again
    price = billing.gateway.client.v1.prices.retrieve(billing.monthly)
    assert first["amountDue"] == price.unit_amount and first["status"] == "draft"
    current = me(client, user)["subscription"]
    assert first["periodStart"] == current["currentPeriodEnd"]

    # Cancelled at the period end: nothing renews, so nothing is upcoming.
    cancel = client.post("/api/cancel-subscription", json={}, headers=auth_headers(user))
    assert cancel.status_code == 200
    billing.wait_for_webhooks()
    ended = client.get("/api/invoices/upcoming", headers=auth_headers(user)).get_json()
    assert ended == {"upcoming": None}


def test_checkout_asks_for_tax_address_and_tax_ids_when_configured(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    def checkout_params(user: str) -> dict[str, Any]:
        reply = client.post(
            "/api/create-checkout-session", json={"plan": "monthly"}, headers=auth_headers(user)
        )
        assert reply.status_code == 200, reply.get_json()
        return billing.stripe_calls("POST", "/v1/checkout/sessions")[-1]["params"]

    plain = checkout_params("tax-off")
    assert plain["billing_address_collection"] == "auto"
    assert "automatic_tax" not in plain and "tax_id_collection" not in plain
    app.config.update(STRIPE_AUTOMATIC_TAX=True, STRIPE_TAX_ID_COLLECTION=True)
    try:
        taxed = checkout_params("tax-on")
    finally:
        app.config.update(STRIPE_AUTOMATIC_TAX=False, STRIPE_TAX_ID_COLLECTION=False)
    assert taxed["automatic_tax"] == {"enabled": "true"}
    assert taxed["tax_id_collection"] == {"enabled": "true"}
    assert taxed["billing_address_collection"] == "required"
    assert taxed["customer_update"] == {"address": "auto", "name": "auto"}


def test_an_email_change_reaches_the_stripe_customer_once(
    client: FlaskClient, billing: Billing
) -> None:
    user = "email-mover"
    subscribe(client, billing, user)
    customer = me(client, user)["user"]["stripeCustomerId"]
    stripe = billing.gateway.client
    assert stripe.v1.customers.retrieve(customer).email == f"{user}@example.com"

    before = len(billing.stripe_calls())
    moved = auth_headers(user, email="moved@example.com")
    for _ in range(3):
        reply = client.get("/api/me", headers=moved)
        assert reply.status_code == 200 and reply.get_json()["user"]["email"] == "moved@example.com"
    assert client.get("/api/invoices", headers=moved).status_code == 200
    updates = [c for c in billing.stripe_calls()[before:] if c["path"].endswith(customer)]
    assert [c["params"] for c in updates] == [{"email": "moved@example.com"}]
    assert stripe.v1.customers.retrieve(customer).email == "moved@example.com"


def test_a_new_card_in_the_portal_pays_the_open_invoice_and_clears_the_action(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    user = "dunning-portal"
    clock_id = customer_on_a_test_clock(app, billing, user)
    subscribe(client, billing, user)
    customer = me(client, user)["user"]["stripeCustomerId"]
    stripe = billing.gateway.client
    sub_id = stripe.v1.subscriptions.list({"customer": customer}).data[0].id
    stripe.v1.subscriptions.update(sub_id, {"default_payment_method": "pm_card_chargeCustomerFail"})
    renew(billing, clock_id, customer)
    assert me(client, user)["action"]["type"] == "fix_payment"

    portal = client.post("/api/create-portal-session", json={}, headers=auth_headers(user))
    page = requests.get(portal.get_json()["url"], timeout=10)
    assert 'id="payment-method-form"' in page.text
    declined = portal_action(
        portal.get_json()["url"], "update_payment_method", card_number="4000 0000 0000 0002"
    )
    assert declined.status_code == 400  # a declined card is refused on the page; nothing changes
    saved = portal_action(portal.get_json()["url"], "update_payment_method", card_number=CARD_OK)
    assert saved.status_code == 303
    billing.wait_for_webhooks()
    fixed = me(client, user)
    assert fixed["action"] is None and fixed["user"]["status"] == "active"
    assert [i["status"] for i in invoices(client, user)] == ["paid", "paid"]


def test_automatic_tax_at_checkout_taxes_the_invoices_shown(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    user = "tax-payer"
    app.config.update(STRIPE_AUTOMATIC_TAX=True)
    try:
        created = client.post(
            "/api/create-checkout-session", json={"plan": "monthly"}, headers=auth_headers(user)
        )
    finally:
        app.config.update(STRIPE_AUTOMATIC_TAX=False)
    url = created.get_json()["session"]["url"]
    assert pay_hosted_checkout(url, CARD_OK).status_code == 400  # the address is required
    assert pay_hosted_checkout(url, CARD_OK, country="GB").status_code == 303
    billing.wait_for_webhooks()

    price = billing.gateway.client.v1.prices.retrieve(billing.monthly).unit_amount
    [invoice] = invoices(client, user)
    assert invoice["amountTax"] == round(price * 0.2) > 0  # the sandbox's UK VAT
    assert invoice["total"] == invoice["amountPaid"] == price + invoice["amountTax"]
    customer = me(client, user)["user"]["stripeCustomerId"]
    assert billing.gateway.client.v1.customers.retrieve(customer).address.country == "GB"
    upcoming = client.get("/api/invoices/upcoming", headers=auth_headers(user)).get_json()
    assert upcoming["upcoming"]["amountTax"] == invoice["amountTax"]


def test_a_tax_id_typed_at_checkout_is_on_the_customers_invoices(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    """STRIPE_TAX_ID_COLLECTION: Stripe's page offers a tax id field; the id typed there is on
    the session, and every invoice of the customer carries it (its hosted page shows it)."""
    user = "vat-business"
    app.config.update(STRIPE_AUTOMATIC_TAX=True, STRIPE_TAX_ID_COLLECTION=True)
    try:
        created = client.post(
            "/api/create-checkout-session", json={"plan": "monthly"}, headers=auth_headers(user)
        )
    finally:
        app.config.update(STRIPE_AUTOMATIC_TAX=False, STRIPE_TAX_ID_COLLECTION=False)
    url = created.get_json()["session"]["url"]
    assert 'id="tax_id"' in requests.get(url, timeout=10).text
    refused = pay_hosted_checkout(url, CARD_OK, country="DE", tax_id="no!")
    assert refused.status_code == 400 and "valid tax ID" in refused.text
    assert (
        pay_hosted_checkout(url, CARD_OK, country="DE", tax_id="de 123.456.789").status_code == 303
    )
    billing.wait_for_webhooks()

    stripe = billing.gateway.client
    session = stripe.v1.checkout.sessions.retrieve(created.get_json()["session"]["id"])
    expected = [{"type": "eu_vat", "value": "DE123456789"}]
    assert [t.to_dict() for t in session.customer_details.tax_ids] == expected
    [invoice] = invoices(client, user)
    at_stripe = stripe.v1.invoices.retrieve(invoice["id"])
    assert [t.to_dict() for t in at_stripe.customer_tax_ids] == expected
    page = requests.get(invoice["hostedInvoiceUrl"], timeout=10).text
    assert "DE123456789 (eu_vat)" in page


def test_upcoming_invoice_when_stripe_is_unreachable(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    user = "upcoming-outage"
    subscribe(client, billing, user)
    billing.sandbox.configure(fault_path="/v1/invoices/create_preview", fault_drop_answers=True)
    try:
        down = client.get("/api/invoices/upcoming", headers=auth_headers(user))
        assert down.status_code == 503  # nothing cached yet: a clear, retryable error
        assert down.get_json()["error"]["code"] == "payment_provider_unavailable"
        billing.sandbox.configure(fault_drop_answers=False)
        fresh = client.get("/api/invoices/upcoming", headers=auth_headers(user)).get_json()
        app.config.update(UPCOMING_INVOICE_CACHE_SECONDS=0)  # every read asks Stripe again
        billing.sandbox.configure(fault_drop_answers=True)
        stale = client.get("/api/invoices/upcoming", headers=auth_headers(user))
        assert stale.status_code == 200 and stale.get_json() == fresh  # the last answer
        # The invoices list never asks Stripe: it answers during the outage.
        assert client.get("/api/invoices", headers=auth_headers(user)).status_code == 200
    finally:
        billing.sandbox.configure(fault_drop_answers=False)
        app.config.update(UPCOMING_INVOICE_CACHE_SECONDS=300)


def test_an_email_change_for_a_customer_stripe_no_longer_has_still_signs_in(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    user = "email-orphan"
    assert client.get("/api/me", headers=auth_headers(user)).status_code == 200
    with app.app_context():
        db.session.execute(
            update(User)
            .where(User.id == user)
            .values(stripe_customer_id="cus_deleted_in_stripe", stripe_customer_email="old@x.io")
        )
        db.session.commit()
    before = len(billing.stripe_calls())
    for _ in range(2):
        reply = client.get("/api/me", headers=auth_headers(user))
        assert reply.status_code == 200, reply.get_json()
    refused = [c for c in billing.stripe_calls()[before:] if "cus_deleted" in c["path"]]
    assert len(refused) == 1 and refused[0]["status"] == 404  # asked once, not per request


def test_an_upcoming_invoice_cached_in_an_older_shape_is_asked_again(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    from app.billing.invoices.service import UPCOMING_KEY
    from app.billing.store import write_state

    user = "upcoming-old-shape"
    subscribe(client, billing, user)
    sub_id = me(client, user)["subscription"]["id"]
    with app.app_context():
        old = '{"version": "x", "fetchedAt": 1, "invoice": {"id": "upcoming", "gone": 1}}'
        write_state(UPCOMING_KEY + sub_id, old)
        db.session.commit()
    billing.sandbox.configure(fault_path="/v1/invoices/create_preview", fault_drop_answers=True)
    try:  # not served as a fallback either: a clear 503, not a 500 from the old shape
        down = client.get("/api/invoices/upcoming", headers=auth_headers(user))
        assert down.status_code == 503, down.get_json()
    finally:
        billing.sandbox.configure(fault_drop_answers=False)
    reply = client.get("/api/invoices/upcoming", headers=auth_headers(user))
    assert reply.status_code == 200 and reply.get_json()["upcoming"]["amountDue"] > 0


def test_a_credit_pack_adds_generations_once_and_they_are_spent_beyond_the_quota(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    user = "credit-buyer"
    headers = auth_headers(user)
    not_sold = client.post("/api/create-credit-pack-session", json={}, headers=headers)
    assert not_sold.status_code == 400 and not_sold.get_json()["error"]["code"] == "unknown_price"
    stripe = billing.gateway.client
    product = stripe.v1.products.create({"name": "100 generations"})
    price = stripe.v1.prices.create({"product": product.id, "currency": "usd", "unit_amount": 500})
    app.config.update(STRIPE_CREDIT_PACK_PRICE_ID=price.id, CREDIT_PACK_GENERATIONS=100)
    try:
        for n in range(10):  # the free quota, used up
            used = client.post(
                "/api/usage/generations", json={"idempotencyKey": f"free-{n}"}, headers=headers
            )
            assert used.status_code == 200
        refused = {"idempotencyKey": "over-1"}
        assert (
            client.post("/api/usage/generations", json=refused, headers=headers).status_code == 402
        )

        created = client.post("/api/create-credit-pack-session", json={}, headers=headers)
        assert created.status_code == 200, created.get_json()
        sent = billing.stripe_calls("POST", "/v1/checkout/sessions")[-1]["params"]
        assert sent["mode"] == "payment"
        assert sent["metadata"]["creditPackGenerations"] == "100"
        assert pay_hosted_checkout(created.get_json()["session"]["url"], CARD_OK).status_code == 303
        billing.wait_for_webhooks()
        granted = client.get("/api/me/entitlements", headers=headers).get_json()
        assert (granted["tier"], granted["credits"]) == ("free", 100)

        # The same completed session again (a replay with another event id): nothing added.
        completed = next(
            e
            for e in stripe.v1.events.list({"type": "checkout.session.completed"}).data
            if e.data.object.mode == "payment"
        ).to_dict()
        post_webhook(
            client, {**completed, "id": completed["id"] + "_again"}, billing.webhook_secret
        )
        assert client.get("/api/me/entitlements", headers=headers).get_json()["credits"] == 100

        # Beyond the quota, generations come from the pack; all or nothing.
        more = client.post(
            "/api/usage/generations",
            json={"idempotencyKey": "credit-1", "count": 3},
            headers=headers,
        )
        assert more.status_code == 200 and more.get_json()["granted"] == 3
        assert client.get("/api/me/entitlements", headers=headers).get_json()["credits"] == 97
        again = client.post(
            "/api/usage/generations",
            json={"idempotencyKey": "credit-1", "count": 3},
            headers=headers,
        )
        assert again.get_json()["replayed"] is True
        assert client.get("/api/me/entitlements", headers=headers).get_json()["credits"] == 97
    finally:
        app.config.update(STRIPE_CREDIT_PACK_PRICE_ID="")
