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


def test_checkout_with_tax_address_and_tax_ids_is_accepted(gateway: StripeGateway) -> None:
    from app.billing.invoices.tax import checkout_tax_params

    tax = checkout_tax_params({"STRIPE_AUTOMATIC_TAX": True, "STRIPE_TAX_ID_COLLECTION": True})
    session = gateway.create_checkout_session(
        user_id="mock-user",
        customer_id="cus_123",
        price_id="price_123",
        success_url="https://app.example.com/success",
        cancel_url="https://app.example.com/cancel",
        metadata={},
        tax=tax,
    )
    assert session["automatic_tax"]["enabled"] is True
    assert session["billing_address_collection"] == "required"


def test_customer_email_update_is_accepted(gateway: StripeGateway) -> None:
    assert gateway.update_customer_email("cus_123", "moved@example.com")["object"] == "customer"


def test_upcoming_invoice_preview_is_newer_than_the_mock_spec(gateway: StripeGateway) -> None:
    """`POST /v1/invoices/create_preview` replaced `GET /v1/invoices/upcoming` in API
    2025-03-31; stripe-mock's spec (February 2022) reads the path as an update of an invoice
    named "create_preview" and refuses its parameters. What we check here is that such a
    refusal reaches the caller as our clear ProviderRejected, not a crash; the call's shape is
    covered by the sandbox (tests/test_invoices_dunning.py)."""
    from app.billing.errors import ProviderRejected

    with pytest.raises(ProviderRejected):
        gateway.preview_upcoming_invoice(customer_id="cus_123", subscription_id="sub_123")


def test_credit_pack_checkout_is_accepted(gateway: StripeGateway) -> None:
    session = gateway.create_credit_pack_session(
        user_id="mock-user",
        customer_id="cus_123",
        price_id="price_123",
        generations=100,
        success_url="https://app.example.com/success",
        cancel_url="https://app.example.com/cancel",
    )
    assert session["object"] == "checkout.session"
