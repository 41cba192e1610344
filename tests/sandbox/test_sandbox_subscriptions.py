"""Subscriptions through the API: create, update, cancel, pause/resume, lists."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from sandbox_helpers import event_types

from stripe_sandbox import Sandbox


def customer_with_card(client: stripe.StripeClient, pm: str = "pm_card_visa") -> Any:
    customer = client.v1.customers.create(params={"email": "api@example.com", "payment_method": pm})
    card = client.v1.customers.payment_methods.list(customer.id).data[0]
    return client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": card.id}}
    )


def test_create_update_cancel(client: stripe.StripeClient, catalog: dict[str, Any]) -> None:
    customer = customer_with_card(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": catalog["monthly"].id, "quantity": 2}],
            "metadata": {"plan": "pro"},
            "expand": ["latest_invoice"],
        }
    )
    assert sub.status == "active" and sub.latest_invoice.amount_paid == 3800
    assert sub.metadata["plan"] == "pro"
    by_price = client.v1.subscriptions.list(params={"price": catalog["monthly"].id})
    assert [s.id for s in by_price.data] == [sub.id]
    assert client.v1.subscriptions.list(params={"price": catalog["yearly"].id}).data == []
    assert [
        s.id
        for s in client.v1.subscriptions.list(
            params={"customer": customer.id, "status": "active"}
        ).data
    ] == [sub.id]
    items = client.v1.subscription_items.list(params={"subscription": sub.id})
    assert items.data[0].quantity == 2

    item_id = sub["items"].data[0].id
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item_id, "quantity": 3}],
            "proration_behavior": "always_invoice",
            "metadata": {"plan": "", "seats": "3"},
            "description": "three seats",
        },
    )
    assert updated["items"].data[0].quantity == 3
    assert updated.metadata.to_dict() == {"seats": "3"}
    assert updated.description == "three seats" and updated.latest_invoice != sub.latest_invoice
    proration = client.v1.invoices.retrieve(updated.latest_invoice)
    assert proration.billing_reason == "subscription_update" and proration.status == "paid"
    assert all(line.parent.subscription_item_details.proration for line in proration.lines.data)

    none = client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item_id, "quantity": 1}], "proration_behavior": "none"}
    )
    assert none.latest_invoice == updated.latest_invoice

    paused = client.v1.subscriptions.update(
        sub.id, params={"pause_collection": {"behavior": "void"}}
    )
    assert paused.pause_collection.behavior == "void"
    cleared = client.v1.subscriptions.update(sub.id, params={"pause_collection": ""})
    assert cleared.pause_collection is None

    canceled = client.v1.subscriptions.cancel(
        sub.id,
        params={"cancellation_details": {"comment": "too pricey", "feedback": "too_expensive"}},
    )
    assert canceled.status == "canceled" and canceled.ended_at is not None
    assert canceled.cancellation_details.feedback == "too_expensive"
    assert "customer.subscription.deleted" in event_types(client)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.cancel(sub.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert client.v1.subscriptions.list(params={"customer": customer.id}).data == []
    assert len(client.v1.subscriptions.list(params={"status": "canceled"}).data) == 1


def test_update_validation(client: stripe.StripeClient, catalog: dict[str, Any]) -> None:
    customer = customer_with_card(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": catalog["monthly"].id}]}
    )
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.update(sub.id, params={"proration_behavior": "sometimes"})
    assert err.value.code == "parameter_invalid_enum"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"id": sub["items"].data[0].id, "price": catalog["once"].id}]}
        )
    assert "recurring" in str(err.value)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": "soon"})
    assert err.value.code == "parameter_invalid_boolean"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.retrieve("sub_missing")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.list(params={"status": "sleeping"})
    assert err.value.param == "status"
    cancel_at = client.v1.subscriptions.update(
        sub.id, params={"cancel_at": sub["items"].data[0].current_period_end - 100}
    )
    assert cancel_at.cancel_at is not None and cancel_at.cancel_at_period_end is False
    cleared = client.v1.subscriptions.update(sub.id, params={"cancel_at": ""})
    assert cleared.cancel_at is None


def test_failing_card_and_resume_paused(
    client: stripe.StripeClient, sb: Sandbox, catalog: dict[str, Any]
) -> None:
    failing = customer_with_card(client, "pm_card_chargeCustomerFail")
    incomplete = client.v1.subscriptions.create(
        params={
            "customer": failing.id,
            "items": [{"price": catalog["monthly"].id}],
            "expand": ["latest_invoice"],
        }
    )
    assert incomplete.status == "incomplete" and incomplete.latest_invoice.status == "open"
    with pytest.raises(stripe.CardError):
        client.v1.subscriptions.create(
            params={
                "customer": failing.id,
                "items": [{"price": catalog["monthly"].id}],
                "payment_behavior": "error_if_incomplete",
            }
        )
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(incomplete.latest_invoice.id)

    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_900_000_000})
    bare = client.v1.customers.create(params={"test_clock": clock.id})
    trial = client.v1.subscriptions.create(
        params={
            "customer": bare.id,
            "items": [{"price": catalog["monthly"].id}],
            "trial_period_days": 3,
            "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
        }
    )
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": trial.trial_end + 10}
    )
    assert client.v1.subscriptions.retrieve(trial.id).status == "paused"
    client.v1.payment_methods.attach("pm_card_visa", params={"customer": bare.id})
    pm = client.v1.customers.payment_methods.list(bare.id).data[0]
    client.v1.customers.update(
        bare.id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )
    resumed = client.v1.subscriptions.resume(trial.id, params={"billing_cycle_anchor": "now"})
    assert resumed.status == "active"
    assert client.v1.invoices.retrieve(resumed.latest_invoice).status == "paid"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.resume(trial.id)


def test_customers_delete_and_search(client: stripe.StripeClient, catalog: dict[str, Any]) -> None:
    customer = customer_with_card(client)
    client.v1.customers.update(
        customer.id,
        params={
            "metadata": {"userId": "u-9"},
            "name": "Ada",
            "phone": "+15555550100",
            "address": {"city": "Paris"},
        },
    )
    found = client.v1.customers.search(params={"query": "metadata['userId']:'u-9'"})
    assert [c.id for c in found.data] == [customer.id]
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": catalog["monthly"].id}]}
    )
    assert client.v1.customers.delete(customer.id).deleted is True
    assert client.v1.customers.retrieve(customer.id).deleted is True
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert client.v1.customers.list().data == []


def test_catalog_lists_and_updates(client: stripe.StripeClient, catalog: dict[str, Any]) -> None:
    yearly = client.v1.prices.list(params={"recurring": {"interval": "year"}})
    assert [p.id for p in yearly.data] == [catalog["yearly"].id]
    one_time = client.v1.prices.list(params={"type": "one_time"})
    assert [p.id for p in one_time.data] == [catalog["once"].id]
    client.v1.prices.update(catalog["monthly"].id, params={"active": False})
    active = client.v1.prices.list(params={"active": True, "product": catalog["product"].id})
    assert catalog["monthly"].id not in [p.id for p in active.data]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.create(
            params={
                "product": catalog["product"].id,
                "currency": "usd",
                "unit_amount": 1,
                "lookup_key": "pro_yearly",
            }
        )
    moved = client.v1.prices.create(
        params={
            "product": catalog["product"].id,
            "currency": "usd",
            "unit_amount": 1,
            "lookup_key": "pro_yearly",
            "transfer_lookup_key": True,
            "recurring": {"interval": "year"},
        }
    )
    assert [p.id for p in client.v1.prices.list(params={"lookup_keys": ["pro_yearly"]}).data] == [
        moved.id
    ]
    product = client.v1.products.update(
        catalog["product"].id, params={"description": "Everything", "default_price": moved.id}
    )
    assert product.default_price == moved.id and product.description == "Everything"
    with_default = client.v1.products.create(
        params={
            "name": "Starter",
            "default_price_data": {
                "currency": "eur",
                "unit_amount": 900,
                "recurring": {"interval": "month"},
            },
        }
    )
    assert with_default.default_price.startswith("price_")
    assert len(client.v1.products.list(params={"active": True}).data) == 2


def test_failed_update_changes_nothing(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = customer_with_card(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": catalog["monthly"].id}]}
    )
    item_id = sub["items"].data[0].id
    events_before = len(client.v1.events.list(params={"limit": 100}).data)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub.id, params={"items": [{"id": item_id, "deleted": True}]})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(
            sub.id, params={"metadata": {"changed": "yes"}, "cancel_at": 1000}
        )
    after = client.v1.subscriptions.retrieve(sub.id)
    assert [i.id for i in after["items"].data] == [item_id]
    assert "changed" not in after.metadata
    assert len(client.v1.events.list(params={"limit": 100}).data) == events_before
