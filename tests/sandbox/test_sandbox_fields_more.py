"""The objects added for Stripe's CLI recipes have every top-level field of Stripe's example
objects (stripe-fixtures3.json at the pinned version); the lists are kept here, literally."""

from __future__ import annotations

import json
from typing import Any

import stripe

SETUP_INTENT = "application automatic_payment_methods cancellation_reason client_secret created customer description excluded_payment_method_types flow_directions id last_setup_error latest_attempt livemode mandate metadata next_action object on_behalf_of payment_method payment_method_configuration_details payment_method_options payment_method_types single_use_mandate status usage"  # noqa: E501
COUPON = "amount_off created currency duration duration_in_months id livemode max_redemptions metadata name object percent_off redeem_by times_redeemed valid"  # noqa: E501
PROMOTION_CODE = "active code created customer customer_account expires_at id livemode max_redemptions metadata object promotion restrictions times_redeemed"  # noqa: E501
INVOICEITEM = "amount currency customer customer_account date description discountable discounts id invoice livemode metadata net_amount object parent period pricing proration quantity quantity_decimal tax_rates test_clock"  # noqa: E501
SUBSCRIPTION_SCHEDULE = "application billing_mode canceled_at completed_at created current_phase customer customer_account default_settings end_behavior id livemode metadata object phases released_at released_subscription status subscription test_clock"  # noqa: E501
PAYMENT_METHOD = "allow_redisplay billing_details card created customer customer_account id livemode metadata object type"  # noqa: E501


def check(obj: Any, fields: str) -> None:
    data = json.loads(str(obj))
    missing = [f for f in fields.split() if f not in data]
    assert not missing, f"{data['object']} lacks {missing}"


def test_new_objects_have_every_field_of_stripes_examples(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = client.v1.customers.create(params={"payment_method": "pm_card_visa"})
    pm = client.v1.customers.payment_methods.list(customer.id).data[0]
    check(pm, PAYMENT_METHOD)
    seti = client.v1.setup_intents.create(
        params={"customer": customer.id, "payment_method": "pm_card_visa", "confirm": True}
    )
    check(seti, SETUP_INTENT)
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    check(coupon, COUPON)
    promo = client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": coupon.id}}
    )
    check(promo, PROMOTION_CODE)
    item = client.v1.invoice_items.create(
        params={"customer": customer.id, "amount": 100, "currency": "usd"}
    )
    check(item, INVOICEITEM)
    schedule = client.v1.subscription_schedules.create(
        params={
            "customer": customer.id,
            "phases": [{"items": [{"price": catalog["monthly"].id}]}],
        }
    )
    check(schedule, SUBSCRIPTION_SCHEDULE)
