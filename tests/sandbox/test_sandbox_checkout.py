"""Product + prices -> subscription checkout -> pay on the hosted page with
each test card -> subscription, invoice, events and verified webhooks."""

from __future__ import annotations

from typing import Any

import requests
import stripe
from sandbox_helpers import create_session, event_types, pay

from stripe_sandbox import Sandbox

PAID_CHECKOUT_EVENTS = {
    "customer.created",
    "customer.subscription.created",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "payment_intent.succeeded",
    "customer.subscription.updated",
    "checkout.session.completed",
}


def test_paid_subscription_checkout(
    client: stripe.StripeClient, sb: Sandbox, hook: Any, catalog: dict[str, Any]
) -> None:
    session = create_session(
        client,
        catalog["monthly"].id,
        client_reference_id="user-1",
        metadata={"userId": "user-1"},
        subscription_data={"metadata": {"userId": "user-1"}},
        allow_promotion_codes=True,
        billing_address_collection="auto",
        payment_method_types=["card"],
    )
    assert session.status == "open" and session.payment_status == "unpaid"
    assert session.url.startswith(sb.url + "/")
    assert session.amount_total == 1900 and session.currency == "usd"

    page = requests.get(session.url, timeout=10)
    assert page.status_code == 200
    assert 'id="card_number"' in page.text and 'id="submit"' in page.text
    assert "Creator Pro" in page.text and 'method="post"' in page.text
    assert 'id="email"' not in page.text  # customer_email was given

    response = pay(session.url, "4242 4242 4242 4242")
    assert response.status_code == 303
    assert response.headers["Location"] == (f"https://app.example/success?session_id={session.id}")

    done = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["subscription", "customer", "invoice"]}
    )
    assert done.status == "complete" and done.payment_status == "paid"
    assert done.client_reference_id == "user-1" and done.metadata["userId"] == "user-1"
    sub = done.subscription
    assert sub.status == "active" and sub.metadata["userId"] == "user-1"
    assert sub.customer == done.customer.id and done.customer.email == "buyer@example.com"
    item = sub["items"].data[0]
    assert item.price.id == catalog["monthly"].id and item.quantity == 1
    assert item.current_period_end > item.current_period_start
    assert "current_period_end" not in sub  # lives on the items at this API version
    invoice = done.invoice
    assert invoice.id == sub.latest_invoice and invoice.status == "paid"
    assert invoice.amount_paid == 1900 and invoice.billing_reason == "subscription_create"
    assert invoice.parent.subscription_details.subscription == sub.id
    assert invoice.subscription == sub.id
    assert invoice.hosted_invoice_url.startswith(sb.url + "/invoice/")
    assert requests.get(invoice.hosted_invoice_url, timeout=10).status_code == 200

    with_payments = client.v1.invoices.retrieve(
        invoice.id, params={"expand": ["payments.data.payment.payment_intent"]}
    )
    intent = with_payments.payments.data[0].payment.payment_intent
    assert intent.status == "succeeded" and intent.amount == 1900
    assert [
        pi.id for pi in client.v1.payment_intents.list(params={"customer": sub.customer}).data
    ] == [intent.id]

    assert set(event_types(client)) >= PAID_CHECKOUT_EVENTS
    created = client.v1.events.list(params={"type": "customer.subscription.created"}).data[0]
    assert created.data.object.status == "incomplete"
    updated = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert updated.data.object.status == "active"
    assert updated.data.previous_attributes.status == "incomplete"
    completed = client.v1.events.list(params={"type": "checkout.session.completed"}).data[0]
    assert completed.data.object.subscription == sub.id

    assert sb.wait_for_webhooks(5)
    received = hook.events()  # every delivery verified with construct_event
    assert {e.type for e in received} >= PAID_CHECKOUT_EVENTS
    assert {e.id for e in received} == {
        e.id for e in client.v1.events.list(params={"limit": 100}).data
    }


def test_checkout_without_email_asks_for_it(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": catalog["monthly"].id, "quantity": 1}],
            "success_url": "https://app.example/ok",
        }
    )
    assert 'id="email"' in requests.get(session.url, timeout=10).text
    missing = pay(session.url, "4242424242424242")
    assert missing.status_code == 400 and "email" in missing.text
    assert pay(session.url, "4242424242424242", email="new@example.com").status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["customer"]})
    assert done.customer.email == "new@example.com"
    assert done.customer_details.email == "new@example.com"


def test_checkout_for_existing_customer(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = client.v1.customers.create(params={"email": "known@example.com"})
    session = create_session(client, catalog["yearly"].id, customer=customer.id)
    assert 'id="email"' not in requests.get(session.url, timeout=10).text
    assert pay(session.url, "4242424242424242").status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.customer == customer.id
    assert len(client.v1.customers.list(params={"email": "known@example.com"}).data) == 1
    assert event_types(client).count("customer.created") == 1


def test_declined_card_keeps_session_open(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    session = create_session(client, catalog["monthly"].id)
    response = pay(session.url, "4000 0000 0000 0002")
    assert response.status_code == 402
    assert "Your card was declined." in response.text and 'id="card_number"' in response.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert client.v1.subscriptions.list().data == []
    assert pay(session.url, "4242424242424242").status_code == 303


def test_invalid_card_number(client: stripe.StripeClient, catalog: dict[str, Any]) -> None:
    session = create_session(client, catalog["monthly"].id)
    response = pay(session.url, "1234 5678 9012 3456")
    assert response.status_code == 400 and "Your card number is invalid." in response.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_card_requiring_authentication(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    session = create_session(client, catalog["monthly"].id)
    challenge = pay(session.url, "4000002500003155")
    assert challenge.status_code == 200
    assert f'action="/checkout/{session.id}/authenticate"' in challenge.text
    assert 'value="approve"' in challenge.text and 'value="fail"' in challenge.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    approved = requests.post(
        f"{session.url}/authenticate", data={"action": "approve"}, allow_redirects=False, timeout=10
    )
    assert approved.status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription"]})
    assert done.status == "complete" and done.subscription.status == "active"

    other = create_session(client, catalog["monthly"].id)
    assert pay(other.url, "4000 0025 0000 3155").status_code == 200
    failed = requests.post(
        f"{other.url}/authenticate", data={"action": "fail"}, allow_redirects=False, timeout=10
    )
    assert failed.status_code == 402 and "unable to authenticate" in failed.text
    assert client.v1.checkout.sessions.retrieve(other.id).status == "open"


def test_card_that_fails_later(client: stripe.StripeClient, catalog: dict[str, Any]) -> None:
    plain = create_session(client, catalog["monthly"].id)
    declined = pay(plain.url, "4000000000000341")
    assert declined.status_code == 402 and "Your card was declined." in declined.text

    trial = create_session(
        client, catalog["monthly"].id, subscription_data={"trial_period_days": 14}
    )
    assert trial.amount_total == 0
    assert pay(trial.url, "4000000000000341").status_code == 303
    done = client.v1.checkout.sessions.retrieve(
        trial.id, params={"expand": ["subscription.latest_invoice"]}
    )
    assert done.payment_status == "no_payment_required"
    sub = done.subscription
    assert sub.status == "trialing" and sub.trial_end - sub.trial_start == 14 * 86400
    assert sub["items"].data[0].current_period_end == sub.trial_end
    assert sub.latest_invoice.amount_due == 0 and sub.latest_invoice.status == "paid"
    created = client.v1.events.list(params={"type": "customer.subscription.created"}).data[0]
    assert created.data.object.status == "trialing"


def test_paying_finished_sessions_is_refused(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    expired = create_session(client, catalog["monthly"].id)
    client.v1.checkout.sessions.expire(expired.id)
    response = pay(f"{expired.url}", "4242424242424242")
    assert response.status_code == 400 and "expired" in response.text
    assert "checkout.session.expired" in event_types(client)

    complete = create_session(client, catalog["monthly"].id)
    assert pay(complete.url, "4242424242424242").status_code == 303
    again = pay(complete.url, "4242424242424242")
    assert again.status_code == 400 and "already complete" in again.text
    assert len(client.v1.subscriptions.list().data) == 1


def test_payment_mode_and_line_items(client: stripe.StripeClient, catalog: dict[str, Any]) -> None:
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer_email": "once@example.com",
            "line_items": [{"price": catalog["once"].id, "quantity": 3}],
            "success_url": "https://app.example/ok",
            "customer_creation": "always",
        }
    )
    items = client.v1.checkout.sessions.line_items.list(session.id)
    assert items.data[0].quantity == 3 and items.data[0].amount_total == 1500
    assert items.data[0].price.id == catalog["once"].id
    assert pay(session.url, "4242424242424242").status_code == 303
    done = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent", "line_items"]}
    )
    assert done.payment_intent.status == "succeeded" and done.payment_intent.amount == 1500
    assert done.line_items.data[0].quantity == 3
    assert done.subscription is None and done.customer.startswith("cus_")
