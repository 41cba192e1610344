"""Invoice items and one-off invoices (create, finalize, pay, void, uncollectible, delete),
coupons and promotion codes, and subscription schedules, through the official SDK."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import stripe
from sandbox_helpers import API_KEY, event_types


def paying_customer(client: stripe.StripeClient, pm: str = "pm_card_visa") -> Any:
    return client.v1.customers.create(
        params={"payment_method": pm, "invoice_settings": {"default_payment_method": pm}}
    )


def test_one_off_invoice_from_pending_items_is_finalized_and_paid(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = paying_customer(client)
    item = client.v1.invoice_items.create(
        params={"customer": customer.id, "amount": 2000, "currency": "usd", "description": "Setup"}
    )
    assert item.object == "invoiceitem" and item.invoice is None
    by_price = client.v1.invoice_items.create(
        params={"customer": customer.id, "pricing": {"price": catalog["once"].id}, "quantity": 2}
    )
    assert by_price.amount == 1000
    pending = client.v1.invoice_items.list(params={"customer": customer.id, "pending": True})
    assert len(pending.data) == 2
    invoice = client.v1.invoices.create(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    assert invoice.status == "draft" and invoice.billing_reason == "manual"
    assert invoice.amount_due == 3000 and len(invoice.lines.data) == 2
    assert invoice.lines.data[0].parent.type == "invoice_item_details"
    invoice = client.v1.invoices.finalize_invoice(invoice.id)
    assert invoice.status == "open" and invoice.number
    invoice = client.v1.invoices.pay(invoice.id)
    assert invoice.status == "paid" and invoice.amount_paid == 3000
    types = event_types(client)
    for expected in ("invoiceitem.created", "invoice.created", "invoice.finalized"):
        assert expected in types
    assert types[-2:] == ["invoice.paid", "invoice.payment_succeeded"]


def test_invoice_excludes_pending_items_by_default_and_drafts_can_be_deleted(
    client: stripe.StripeClient,
) -> None:
    customer = paying_customer(client)
    client.v1.invoice_items.create(
        params={"customer": customer.id, "amount": 500, "currency": "usd"}
    )
    draft = client.v1.invoices.create(params={"customer": customer.id})
    assert draft.amount_due == 0 and draft.lines.data == []
    item = client.v1.invoice_items.create(
        params={"customer": customer.id, "amount": 700, "currency": "usd", "invoice": draft.id}
    )
    draft = client.v1.invoices.retrieve(draft.id)
    assert draft.amount_due == 700 and item.invoice == draft.id
    draft = client.v1.invoices.update(draft.id, params={"description": "Consulting"})
    assert draft.description == "Consulting"
    deleted = client.v1.invoices.delete(draft.id)
    assert deleted.deleted
    assert client.v1.invoice_items.retrieve(item.id).invoice is None
    client.v1.invoice_items.delete(item.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoice_items.retrieve(item.id)


def test_void_and_uncollectible(client: stripe.StripeClient) -> None:
    customer = paying_customer(client)
    invoices = []
    for _ in range(2):
        client.v1.invoice_items.create(
            params={"customer": customer.id, "amount": 900, "currency": "usd"}
        )
        created = client.v1.invoices.create(
            params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
        )
        invoices.append(client.v1.invoices.finalize_invoice(created.id))
    assert client.v1.invoices.void_invoice(invoices[0].id).status == "void"
    assert client.v1.invoices.mark_uncollectible(invoices[1].id).status == "uncollectible"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.pay(invoices[0].id)
    types = event_types(client)
    assert "invoice.voided" in types and "invoice.marked_uncollectible" in types


def test_paying_with_a_failing_card_is_a_402_and_payment_failed(
    client: stripe.StripeClient,
) -> None:
    customer = paying_customer(client, "pm_card_chargeCustomerFail")
    client.v1.invoice_items.create(
        params={"customer": customer.id, "amount": 1500, "currency": "usd"}
    )
    invoice = client.v1.invoices.create(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(invoice.id)
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert invoice.status == "open" and invoice.attempt_count == 1
    assert "invoice.payment_failed" in event_types(client)


def test_coupons_and_promotion_codes(client: stripe.StripeClient) -> None:
    coupon = client.v1.coupons.create(
        params={"percent_off": 25.5, "duration": "repeating", "duration_in_months": 3}
    )
    assert coupon.percent_off == 25.5 and coupon.valid and coupon.duration_in_months == 3
    fixed = client.v1.coupons.create(
        params={"id": "TENOFF", "amount_off": 1000, "currency": "usd", "duration": "once"}
    )
    assert fixed.id == "TENOFF"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.coupons.create(params={"amount_off": 1000, "duration": "once"})
    coupon = client.v1.coupons.update(coupon.id, params={"name": "Spring"})
    assert coupon.name == "Spring"
    promo = client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": coupon.id}, "code": "SPRING25"}
    )
    assert promo.code == "SPRING25" and promo.active
    assert promo.promotion.coupon == coupon.id
    found = client.v1.promotion_codes.list(params={"code": "spring25"}).data
    assert [p.id for p in found] == [promo.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.promotion_codes.create(
            params={"promotion": {"type": "coupon", "coupon": coupon.id}, "code": "SPRING25"}
        )
    promo = client.v1.promotion_codes.update(promo.id, params={"active": False})
    assert not promo.active
    assert client.v1.coupons.delete(fixed.id).deleted
    types = event_types(client)
    for expected in ("coupon.created", "coupon.updated", "coupon.deleted"):
        assert expected in types
    assert "promotion_code.created" in types and "promotion_code.updated" in types


def test_subscription_schedule_starts_now_and_is_released(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = paying_customer(client)
    schedule = client.v1.subscription_schedules.create(
        params={
            "customer": customer.id,
            "start_date": "now",
            "end_behavior": "release",
            "phases": [
                {"items": [{"price": catalog["monthly"].id}], "iterations": 3},
                {"items": [{"price": catalog["yearly"].id}], "iterations": 1},
            ],
        }
    )
    assert schedule.status == "active" and len(schedule.phases) == 2
    assert schedule.phases[0].end_date == schedule.phases[1].start_date
    sub = client.v1.subscriptions.retrieve(str(schedule.subscription))
    assert sub.status == "active" and sub.schedule == schedule.id
    schedule = client.v1.subscription_schedules.release(schedule.id)
    assert schedule.status == "released" and schedule.released_subscription == sub.id
    assert client.v1.subscriptions.retrieve(sub.id).schedule is None
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    types = event_types(client)
    assert "subscription_schedule.created" in types
    assert "subscription_schedule.released" in types


def test_subscription_schedule_from_a_subscription_is_canceled(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = paying_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": catalog["monthly"].id}]}
    )
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    assert schedule.subscription == sub.id and schedule.customer == customer.id
    listed = client.v1.subscription_schedules.list(params={"customer": customer.id}).data
    assert [s.id for s in listed] == [schedule.id]
    schedule = client.v1.subscription_schedules.cancel(schedule.id)
    assert schedule.status == "canceled"
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscription_schedules.release(schedule.id)
    assert "subscription_schedule.canceled" in event_types(client)


BAD_REQUESTS = [
    ("POST", "/v1/invoiceitems", {"customer": "cus_nope", "amount": "1", "currency": "usd"}),
    ("POST", "/v1/invoiceitems", {"amount": "x"}),
    ("POST", "/v1/invoices", {}),
    ("POST", "/v1/invoices/in_nope/finalize", {}),
    ("POST", "/v1/coupons", {"percent_off": "abc", "duration": "once"}),
    ("POST", "/v1/coupons", {"percent_off": "150", "duration": "once"}),
    ("POST", "/v1/coupons", {"percent_off": "10", "duration": "repeating"}),
    ("POST", "/v1/promotion_codes", {"promotion[coupon]": "nope"}),
    ("POST", "/v1/promotion_codes", {}),
    ("POST", "/v1/subscription_schedules", {}),
    (
        "POST",
        "/v1/subscription_schedules",
        {"customer": "cus_nope", "phases[0][items][0][price]": "p"},
    ),
    ("POST", "/v1/subscription_schedules", {"from_subscription": "sub_nope"}),
    ("POST", "/v1/payment_intents", {"amount": "0", "currency": "usd"}),
    ("POST", "/v1/payment_intents", {"amount": "10", "currency": "dollars"}),
    ("POST", "/v1/payment_intents", {"amount": "10", "currency": "usd", "payment_method": "pm_x"}),
    ("POST", "/v1/payment_intents/pi_nope/confirm", {}),
    ("POST", "/v1/setup_intents", {"customer": "cus_nope"}),
    ("POST", "/v1/setup_intents", {"usage": "sometimes"}),
    ("POST", "/v1/customers", {"invoice_settings[default_payment_method]": "pm_nope"}),
]


@pytest.mark.parametrize(("method", "path", "params"), BAD_REQUESTS)
def test_bad_requests_are_stripe_errors_not_500s(
    sb: Any, method: str, path: str, params: dict[str, str]
) -> None:
    response = requests.request(
        method, f"{sb.url}{path}", data=params, auth=(API_KEY, ""), timeout=10
    )
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


def test_pending_invoice_items_go_on_the_next_subscription_invoice(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_900_000_000})
    customer = client.v1.customers.create(
        params={
            "test_clock": clock.id,
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": catalog["monthly"].id}]}
    )
    item = client.v1.invoice_items.create(
        params={"customer": customer.id, "amount": 250, "currency": "usd", "description": "Extra"}
    )
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": 1_900_000_000 + 32 * 86400}
    )
    renewal = client.v1.invoices.retrieve(
        str(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    )
    assert renewal.billing_reason == "subscription_cycle"
    assert renewal.amount_paid == 1900 + 250
    assert [line.description for line in renewal.lines.data][-1] == "Extra"
    assert client.v1.invoice_items.retrieve(item.id).invoice == renewal.id


def test_deleting_a_plan_deletes_the_recurring_price(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    plan = client.v1.plans.retrieve(catalog["monthly"].id)
    assert plan.object == "plan" and plan.amount == 1900 and plan.interval == "month"
    assert client.v1.plans.delete(catalog["monthly"].id).deleted
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.retrieve(catalog["monthly"].id)
    types = event_types(client)
    assert "plan.deleted" in types and "price.deleted" in types
