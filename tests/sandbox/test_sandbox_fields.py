"""Every top-level field of Stripe's example objects (current API version) is
present on the sandbox's objects. The field lists are kept here, literally."""

from __future__ import annotations

import json
from typing import Any

import requests
import stripe
from sandbox_helpers import API_KEY, create_session, pay

from stripe_sandbox import Sandbox

PRODUCT = [
    "active",
    "created",
    "default_price",
    "description",
    "id",
    "images",
    "livemode",
    "marketing_features",
    "metadata",
    "name",
    "object",
    "package_dimensions",
    "shippable",
    "statement_descriptor",
    "tax_code",
    "type",
    "unit_label",
    "updated",
    "url",
]

PRICE = [
    "active",
    "billing_scheme",
    "created",
    "currency",
    "custom_unit_amount",
    "id",
    "livemode",
    "lookup_key",
    "metadata",
    "nickname",
    "object",
    "product",
    "recurring",
    "tax_behavior",
    "tiers_mode",
    "transform_quantity",
    "type",
    "unit_amount",
    "unit_amount_decimal",
]

CUSTOMER = [
    "address",
    "balance",
    "created",
    "currency",
    "default_source",
    "delinquent",
    "description",
    "discount",
    "email",
    "id",
    "invoice_prefix",
    "invoice_settings",
    "livemode",
    "metadata",
    "name",
    "next_invoice_sequence",
    "object",
    "phone",
    "preferred_locales",
    "shipping",
    "tax_exempt",
    "test_clock",
]

CHECKOUT_SESSION = [
    "adaptive_pricing",
    "after_expiration",
    "allow_promotion_codes",
    "amount_subtotal",
    "amount_total",
    "automatic_tax",
    "billing_address_collection",
    "cancel_url",
    "client_reference_id",
    "client_secret",
    "collected_information",
    "consent",
    "consent_collection",
    "created",
    "currency",
    "currency_conversion",
    "custom_fields",
    "custom_text",
    "customer",
    "customer_account",
    "customer_creation",
    "customer_details",
    "customer_email",
    "discounts",
    "expires_at",
    "id",
    "integration_identifier",
    "invoice",
    "invoice_creation",
    "livemode",
    "locale",
    "managed_payments",
    "metadata",
    "mode",
    "object",
    "origin_context",
    "payment_intent",
    "payment_link",
    "payment_method_collection",
    "payment_method_configuration_details",
    "payment_method_options",
    "payment_method_types",
    "payment_status",
    "permissions",
    "phone_number_collection",
    "recovered_from",
    "saved_payment_method_options",
    "setup_intent",
    "shipping_address_collection",
    "shipping_cost",
    "shipping_options",
    "status",
    "submit_type",
    "subscription",
    "success_url",
    "total_details",
    "ui_mode",
    "url",
    "wallet_options",
]

SUBSCRIPTION = [
    "application",
    "application_fee_percent",
    "automatic_tax",
    "billing_cycle_anchor",
    "billing_cycle_anchor_config",
    "billing_mode",
    "billing_schedules",
    "billing_thresholds",
    "cancel_at",
    "cancel_at_period_end",
    "canceled_at",
    "cancellation_details",
    "collection_method",
    "created",
    "currency",
    "customer",
    "customer_account",
    "days_until_due",
    "default_payment_method",
    "default_source",
    "default_tax_rates",
    "description",
    "discounts",
    "ended_at",
    "id",
    "invoice_settings",
    "items",
    "latest_invoice",
    "livemode",
    "managed_payments",
    "metadata",
    "next_pending_invoice_item_invoice",
    "object",
    "on_behalf_of",
    "pause_collection",
    "payment_settings",
    "pending_invoice_item_interval",
    "pending_setup_intent",
    "pending_update",
    "schedule",
    "start_date",
    "status",
    "test_clock",
    "transfer_data",
    "trial_end",
    "trial_settings",
    "trial_start",
]

SUBSCRIPTION_ITEM = [
    "billing_thresholds",
    "created",
    "current_period_end",
    "current_period_start",
    "discounts",
    "id",
    "metadata",
    "object",
    "plan",
    "price",
    "quantity",
    "subscription",
    "tax_rates",
]

INVOICE = [
    "account_country",
    "account_name",
    "account_tax_ids",
    "amount_due",
    "amount_overpaid",
    "amount_paid",
    "amount_remaining",
    "amount_shipping",
    "application",
    "attempt_count",
    "attempted",
    "auto_advance",
    "automatic_tax",
    "automatically_finalizes_at",
    "billing_reason",
    "collection_method",
    "created",
    "currency",
    "custom_fields",
    "customer",
    "customer_account",
    "customer_address",
    "customer_email",
    "customer_name",
    "customer_phone",
    "customer_shipping",
    "customer_tax_exempt",
    "customer_tax_ids",
    "default_payment_method",
    "default_source",
    "default_tax_rates",
    "description",
    "discounts",
    "due_date",
    "effective_at",
    "ending_balance",
    "footer",
    "from_invoice",
    "hosted_invoice_url",
    "id",
    "invoice_pdf",
    "issuer",
    "last_finalization_error",
    "latest_revision",
    "lines",
    "livemode",
    "metadata",
    "next_payment_attempt",
    "number",
    "object",
    "on_behalf_of",
    "parent",
    "payment_settings",
    "period_end",
    "period_start",
    "post_payment_credit_notes_amount",
    "pre_payment_credit_notes_amount",
    "receipt_number",
    "rendering",
    "shipping_cost",
    "shipping_details",
    "starting_balance",
    "statement_descriptor",
    "status",
    "status_transitions",
    "subscription",
    "subtotal",
    "subtotal_excluding_tax",
    "test_clock",
    "total",
    "total_discount_amounts",
    "total_excluding_tax",
    "total_pretax_credit_amounts",
    "total_taxes",
    "webhooks_delivered_at",
]

PORTAL_SESSION = [
    "configuration",
    "created",
    "customer",
    "customer_account",
    "flow",
    "id",
    "livemode",
    "locale",
    "object",
    "on_behalf_of",
    "return_url",
    "url",
]

EVENT = [
    "api_version",
    "created",
    "data",
    "id",
    "livemode",
    "object",
    "pending_webhooks",
    "request",
    "type",
]

WEBHOOK_ENDPOINT = [
    "api_version",
    "application",
    "created",
    "description",
    "enabled_events",
    "id",
    "livemode",
    "metadata",
    "object",
    "status",
    "url",
]

PAYMENT_INTENT = [
    "amount",
    "amount_capturable",
    "amount_details",
    "amount_received",
    "application",
    "application_fee_amount",
    "automatic_payment_methods",
    "canceled_at",
    "cancellation_reason",
    "capture_method",
    "client_secret",
    "confirmation_method",
    "created",
    "currency",
    "customer",
    "customer_account",
    "description",
    "excluded_payment_method_types",
    "id",
    "last_payment_error",
    "latest_charge",
    "livemode",
    "managed_payments",
    "metadata",
    "next_action",
    "object",
    "on_behalf_of",
    "payment_method",
    "payment_method_configuration_details",
    "payment_method_options",
    "payment_method_types",
    "processing",
    "receipt_email",
    "review",
    "setup_future_usage",
    "shipping",
    "source",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "status",
    "transfer_data",
    "transfer_group",
]

TEST_CLOCK = [
    "created",
    "deletes_after",
    "frozen_time",
    "id",
    "livemode",
    "name",
    "object",
    "status",
    "status_details",
]

INVOICE_LINE_ITEM = [
    "amount",
    "currency",
    "description",
    "discount_amounts",
    "discountable",
    "discounts",
    "id",
    "invoice",
    "livemode",
    "metadata",
    "object",
    "parent",
    "period",
    "pretax_credit_amounts",
    "pricing",
    "quantity",
    "quantity_decimal",
    "subscription",
    "subtotal",
    "taxes",
]

CHECKOUT_LINE_ITEM = [
    "adjustable_quantity",
    "amount_discount",
    "amount_subtotal",
    "amount_tax",
    "amount_total",
    "currency",
    "description",
    "id",
    "metadata",
    "object",
    "price",
    "quantity",
]


def get(sb: Sandbox, path: str, **params: Any) -> dict[str, Any]:
    response = requests.get(
        f"{sb.url}{path}", params=params, timeout=10, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_fields(obj: dict[str, Any], fields: list[str], what: str) -> None:
    missing = [f for f in fields if f not in obj]
    assert not missing, f"{what} lacks {missing}"
    assert obj.get("livemode", False) is False


def test_objects_have_every_field_of_stripes_examples(
    client: stripe.StripeClient, sb: Sandbox, catalog: dict[str, Any]
) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}
    )
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_900_000_000})
    customer = client.v1.customers.create(params={"email": "f@example.com", "test_clock": clock.id})
    session = create_session(client, catalog["monthly"].id, customer=customer.id)
    assert_fields(
        get(sb, f"/v1/checkout/sessions/{session.id}"), CHECKOUT_SESSION, "checkout.session (open)"
    )
    assert pay(session.url, "4242424242424242").status_code == 303
    done = get(sb, f"/v1/checkout/sessions/{session.id}")
    sub = get(sb, f"/v1/subscriptions/{done['subscription']}")
    portal = client.v1.billing_portal.sessions.create(params={"customer": customer.id})
    invoice = get(sb, f"/v1/invoices/{sub['latest_invoice']}")
    event = get(sb, "/v1/events")["data"][0]
    intent = get(sb, "/v1/payment_intents")["data"][0]

    assert_fields(get(sb, f"/v1/products/{catalog['product'].id}"), PRODUCT, "product")
    assert_fields(get(sb, f"/v1/prices/{catalog['monthly'].id}"), PRICE, "price")
    assert_fields(get(sb, f"/v1/customers/{customer.id}"), CUSTOMER, "customer")
    assert_fields(done, CHECKOUT_SESSION, "checkout.session")
    assert_fields(sub, SUBSCRIPTION, "subscription")
    assert "current_period_end" not in sub and "current_period_start" not in sub
    assert_fields(sub["items"]["data"][0], SUBSCRIPTION_ITEM, "subscription.items[]")
    item_id = sub["items"]["data"][0]["id"]
    assert_fields(
        get(sb, f"/v1/subscription_items/{item_id}"), SUBSCRIPTION_ITEM, "subscription_item"
    )
    assert_fields(invoice, INVOICE, "invoice")
    assert invoice["parent"]["subscription_details"]["subscription"] == sub["id"]
    assert_fields(invoice["lines"]["data"][0], INVOICE_LINE_ITEM, "invoice line item")
    assert_fields(
        get(sb, f"/v1/checkout/sessions/{session.id}/line_items")["data"][0],
        CHECKOUT_LINE_ITEM,
        "checkout line item",
    )
    assert_fields(json.loads(str(portal)), PORTAL_SESSION, "billing_portal.session")
    assert_fields(event, EVENT, "event")
    assert_fields(
        get(sb, f"/v1/webhook_endpoints/{endpoint.id}"), WEBHOOK_ENDPOINT, "webhook_endpoint"
    )
    assert_fields(intent, PAYMENT_INTENT, "payment_intent")
    assert_fields(get(sb, f"/v1/test_helpers/test_clocks/{clock.id}"), TEST_CLOCK, "test_clock")
