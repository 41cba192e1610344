"""Stripe's test payment methods and tokens on customers, subscriptions and attach calls;
payment intents and setup intents, through the official SDK."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import stripe
from sandbox_helpers import create_session, event_types, pay


def test_magic_payment_method_on_customer_create_is_attached_and_default(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create(
        params={
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    cards = client.v1.customers.payment_methods.list(customer.id).data
    assert len(cards) == 1 and cards[0].id.startswith("pm_") and cards[0].card.last4 == "4242"
    assert customer.invoice_settings.default_payment_method == cards[0].id


def test_token_as_customer_source_pays_a_direct_subscription(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = client.v1.customers.create(params={"source": "tok_visa"})
    assert customer.default_source and customer.default_source.startswith("card_")
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": catalog["monthly"].id}]}
    )
    assert sub.status == "active"


def test_unknown_token_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create(params={"source": "tok_nope"})
    assert err.value.param == "source"


def test_subscription_with_a_magic_default_payment_method(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = client.v1.customers.create(params={"email": "direct@example.com"})
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": catalog["monthly"].id}],
            "default_payment_method": "pm_card_mastercard",
        }
    )
    assert sub.status == "active"
    pm = client.v1.payment_methods.retrieve(str(sub.default_payment_method))
    assert pm.customer == customer.id and pm.card.brand == "mastercard"


def test_three_d_secure_2_card_leaves_the_first_invoice_waiting_for_the_customer(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = client.v1.customers.create(
        params={
            "payment_method": "pm_card_threeDSecure2Required",
            "invoice_settings": {"default_payment_method": "pm_card_threeDSecure2Required"},
        }
    )
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": catalog["monthly"].id}]}
    )
    assert sub.status == "incomplete"
    intents = client.v1.payment_intents.list(params={"customer": customer.id}).data
    assert [pi.status for pi in intents] == ["requires_action"]
    assert intents[0].next_action is not None
    types = event_types(client)
    assert "invoice.payment_action_required" in types
    assert "payment_intent.requires_action" in types
    assert "invoice.payment_failed" not in types


def test_attach_magic_payment_method(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    pm = client.v1.payment_methods.attach("pm_card_amex", params={"customer": customer.id})
    assert pm.customer == customer.id and pm.card.brand == "amex"
    with pytest.raises(stripe.CardError):
        client.v1.payment_methods.attach("pm_card_chargeDeclined", params={"customer": customer.id})


def test_payment_intent_confirmed_at_creation(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    assert pi.status == "succeeded" and pi.amount_received == 2000
    charge = client.v1.charges.retrieve(str(pi.latest_charge))
    assert charge.paid and charge.payment_intent == pi.id
    assert event_types(client) == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]


def test_payment_intent_decline_is_a_402_naming_the_intent(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as err:
        client.v1.payment_intents.create(
            params={
                "amount": 500,
                "currency": "usd",
                "payment_method": "pm_card_chargeDeclined",
                "confirm": True,
            }
        )
    assert err.value.code == "card_declined"
    pi_id = err.value.error.payment_intent["id"]  # type: ignore[union-attr,index]
    pi = client.v1.payment_intents.retrieve(pi_id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error is not None
    assert pi.last_payment_error.decline_code == "generic_decline"
    assert "payment_intent.payment_failed" in event_types(client)


def test_payment_intent_update_confirm_capture_and_cancel(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "capture_method": "manual"}
    )
    assert pi.status == "requires_payment_method"
    pi = client.v1.payment_intents.update(
        pi.id, params={"amount": 1200, "metadata": {"order": "7"}}
    )
    assert pi.amount == 1200 and pi.metadata["order"] == "7"
    pi = client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert pi.status == "requires_capture" and pi.amount_capturable == 1200
    pi = client.v1.payment_intents.capture(pi.id)
    assert pi.status == "succeeded" and pi.amount_received == 1200
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.cancel(pi.id)
    other = client.v1.payment_intents.create(params={"amount": 300, "currency": "usd"})
    other = client.v1.payment_intents.cancel(other.id, params={"cancellation_reason": "abandoned"})
    assert other.status == "canceled" and other.cancellation_reason == "abandoned"
    assert "charge.captured" in event_types(client)


def test_payment_intent_needing_authentication(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params={
            "amount": 700,
            "currency": "usd",
            "payment_method": "pm_card_threeDSecure2Required",
            "confirm": True,
        }
    )
    assert pi.status == "requires_action"
    assert pi.next_action is not None and pi.next_action.type == "use_stripe_sdk"


def test_setup_intent_saves_a_card_on_the_customer(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    seti = client.v1.setup_intents.create(
        params={"customer": customer.id, "payment_method": "pm_card_visa", "confirm": True}
    )
    assert seti.status == "succeeded" and seti.usage == "off_session"
    saved = client.v1.customers.payment_methods.list(customer.id).data
    assert [pm.id for pm in saved] == [seti.payment_method]
    assert client.v1.setup_intents.retrieve(seti.id).status == "succeeded"
    assert [s.id for s in client.v1.setup_intents.list(params={"customer": customer.id}).data] == [
        seti.id
    ]
    types = event_types(client)
    assert types.index("setup_intent.created") < types.index("setup_intent.succeeded")


def test_setup_intent_decline_and_cancel(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    with pytest.raises(stripe.CardError):
        client.v1.setup_intents.create(
            params={
                "customer": customer.id,
                "payment_method": "pm_card_chargeDeclined",
                "confirm": True,
            }
        )
    assert "setup_intent.setup_failed" in event_types(client)
    assert client.v1.customers.payment_methods.list(customer.id).data == []
    seti = client.v1.setup_intents.create(params={"payment_method_types": ["card"]})
    assert seti.status == "requires_payment_method"
    seti = client.v1.setup_intents.cancel(seti.id)
    assert seti.status == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.setup_intents.confirm(seti.id, params={"payment_method": "pm_card_visa"})


def test_ending_a_trial_now_sends_trial_will_end(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = client.v1.customers.create(params={"payment_method": "pm_card_visa"})
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": catalog["monthly"].id}],
            "trial_period_days": 14,
            "default_payment_method": client.v1.customers.payment_methods.list(customer.id)
            .data[0]
            .id,
        }
    )
    assert sub.status == "trialing"
    sub = client.v1.subscriptions.update(sub.id, params={"trial_end": "now"})
    assert sub.status == "active"
    types = event_types(client)
    assert types.count("customer.subscription.trial_will_end") == 1
    assert types.index("customer.subscription.trial_will_end") < len(types) - 1


def test_three_d_secure_2_card_at_checkout_then_off_session_renewal_fails(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_900_000_000})
    customer = client.v1.customers.create(params={"test_clock": clock.id})
    session = create_session(client, catalog["monthly"].id, customer=customer.id)
    assert pay(session.url, "4000 0000 0000 3220").status_code == 200  # the 3-D Secure page
    approved = requests.post(
        f"{session.url}/authenticate", data={"action": "approve"}, allow_redirects=False, timeout=10
    )
    assert approved.status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription"]})
    assert done.subscription.status == "active"
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": 1_900_000_000 + 32 * 86400}
    )
    sub = client.v1.subscriptions.retrieve(done.subscription.id)
    assert sub.status == "past_due"
    failed = client.v1.payment_intents.list(params={"customer": customer.id}).data[0]
    assert failed.last_payment_error is not None
    assert failed.last_payment_error.decline_code == "authentication_required"
