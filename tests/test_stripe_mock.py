"""The app's Stripe calls against stripe-mock (Stripe's OpenAPI-driven mock), when
STRIPE_MOCK_URL points at one (`docker run -p 12111:12111 stripe/stripe-mock`).

stripe-mock validates every request against Stripe's published API and answers with canned
objects, so this checks the shapes of what we send: checkout, portal, cancel, resume, refresh.
It is a Go binary / Docker image, not installable from the registries this project's CI
reaches, so CI runs without it and says so (see .ci/run).
"""

from __future__ import annotations

import os

import pytest

from app.stripe.gateway import StripeGateway

STRIPE_MOCK_URL = os.environ.get("STRIPE_MOCK_URL", "")

pytestmark = [
    pytest.mark.stripe_mock,
    pytest.mark.skipif(
        not STRIPE_MOCK_URL, reason="STRIPE_MOCK_URL not set (stripe-mock is not available)"
    ),
]


@pytest.fixture
def gateway() -> StripeGateway:
    return StripeGateway("sk_test_123", api_version="2026-10-28.endive", api_base=STRIPE_MOCK_URL)


def test_checkout_calls_are_accepted(gateway: StripeGateway) -> None:
    customer = gateway.create_customer(user_id="mock-user")
    assert customer["id"].startswith("cus_")
    session = gateway.create_checkout_session(
        user_id="mock-user",
        customer_id=customer["id"],
        price_id="price_123",
        success_url="https://app.example.com/success?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="https://app.example.com/cancel",
        metadata={"source": "test"},
        idempotency_key="mock-checkout-1",
    )
    assert session["object"] == "checkout.session"
    assert gateway.retrieve_checkout_session(session["id"])["object"] == "checkout.session"


def test_portal_call_is_accepted(gateway: StripeGateway) -> None:
    portal = gateway.create_portal_session(
        customer_id="cus_123", return_url="https://app.example.com/account"
    )
    assert portal["object"] == "billing_portal.session"


def test_cancel_resume_and_refresh_calls_are_accepted(gateway: StripeGateway) -> None:
    assert gateway.set_cancel_at_period_end("sub_123", True)["object"] == "subscription"
    assert gateway.set_cancel_at_period_end("sub_123", False)["object"] == "subscription"
    assert gateway.cancel_subscription_now("sub_123")["object"] == "subscription"
    assert gateway.retrieve_subscription("sub_123")["object"] == "subscription"
    assert isinstance(list(gateway.list_subscriptions(customer_id="cus_123")), list)


def test_setup_calls_are_accepted(gateway: StripeGateway) -> None:
    assert isinstance(gateway.list_first_page("prices", {"lookup_keys": ["pro_monthly"]}), list)
    assert isinstance(gateway.list_first_page("webhook_endpoints", {"limit": 10}), list)


# -- plan changes, seats, trials and promotion codes (docs/features.md) ---------------------------
# The bundled stripe-mock spec (February 2022) predates `invoices.create_preview` (2024),
# Checkout's `payment_method_collection` and `subscription_data.trial_settings` (both late
# 2022): those three calls are exercised against the sandbox only
# (tests/test_plan_changes.py), the rest of each call's shape is checked here.


def test_checkout_with_seats_a_trial_and_a_promotion_code_is_accepted(
    gateway: StripeGateway,
) -> None:
    from app.stripe.gateway import CheckoutTrial

    session = gateway.create_checkout_session(
        user_id="mock-user",
        customer_id="cus_123",
        price_id="price_123",
        success_url="https://app.example.com/success",
        cancel_url="https://app.example.com/cancel",
        metadata={},
        quantity=3,
        trial=CheckoutTrial(days=14),  # with a card: only trial_period_days is sent
        promotion_code_id="promo_123",
    )
    assert session["object"] == "checkout.session"


def test_promotion_code_lookup_is_accepted(gateway: StripeGateway) -> None:
    found = gateway.find_promotion_code("LAUNCH25")
    assert found is None or found["object"] == "promotion_code"


def test_plan_or_seat_change_is_accepted(gateway: StripeGateway) -> None:
    changed = gateway.change_subscription_item(
        "sub_123",
        item_id="si_123",
        price_id="price_456",
        quantity=2,
        proration_date=1_700_000_000,
        starting_from="2026-12-05T06:00:00+00:00",
    )
    assert changed["object"] == "subscription"
