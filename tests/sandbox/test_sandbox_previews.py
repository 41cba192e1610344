"""``POST /v1/invoices/create_preview`` for a subscription change: what it shows is what the
change then bills (an interval change at once; a quantity change on the next invoice), and
the preview itself changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import stripe


def _subscribed(client: stripe.StripeClient, price: str) -> Any:
    customer = client.v1.customers.create(
        params={
            "email": "preview@example.com",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    return client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price}]}
    )


def test_interval_change_preview_matches_the_invoice_the_change_makes(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    sub = _subscribed(client, catalog["monthly"].id)
    item = sub["items"].data[0]
    at = item.current_period_start + 86_400 * 10
    change = {"items": [{"id": item.id, "price": catalog["yearly"].id}]}
    preview = client.v1.invoices.create_preview(
        params={
            "subscription": sub.id,
            "subscription_details": {
                **change,
                "proration_behavior": "create_prorations",
                "proration_date": at,
            },
        }
    )
    credits = [line for line in preview.lines.data if line.amount < 0]
    assert len(credits) == 1 and credits[0].parent.subscription_item_details.proration
    assert preview.amount_due == 19000 + credits[0].amount
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == (
        catalog["monthly"].id
    )  # nothing changed
    updated = client.v1.subscriptions.update(
        sub.id,
        params={**change, "proration_behavior": "create_prorations", "proration_date": at},
    )
    invoice = client.v1.invoices.retrieve(str(updated.latest_invoice))
    assert invoice.amount_due == preview.amount_due and invoice.status == "paid"


def test_quantity_change_preview_is_the_next_invoice(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    sub = _subscribed(client, catalog["monthly"].id)
    item = sub["items"].data[0]
    preview = client.v1.invoices.create_preview(
        params={
            "subscription": sub.id,
            "subscription_details": {
                "items": [{"id": item.id, "quantity": 3}],
                "proration_date": item.current_period_start,
            },
        }
    )
    prorations = [
        line for line in preview.lines.data if line.parent.subscription_item_details.proration
    ]
    # From the period's start: the whole period for two more seats (credit 1, charge 3).
    assert sum(line.amount for line in prorations) == 2 * 1900
    assert preview.amount_due == 3 * 1900 + 2 * 1900
    assert preview.period_end == item.current_period_end


def test_preview_refuses_an_unknown_item(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    sub = _subscribed(client, catalog["monthly"].id)
    with pytest.raises(stripe.InvalidRequestError, match="Invalid subscription item"):
        client.v1.invoices.create_preview(
            params={
                "subscription": sub.id,
                "subscription_details": {"items": [{"id": "si_nope", "quantity": 2}]},
            }
        )
