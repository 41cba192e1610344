"""Reading Stripe objects (API answers and webhook payloads alike, as plain dicts)."""

from __future__ import annotations

from typing import Any

from app.billing.time import ms_from_seconds

StripeDict = dict[str, Any]


def object_id(value: Any) -> str | None:
    """An id field that may hold the id itself or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def first_item(subscription: StripeDict) -> StripeDict:
    items = (subscription.get("items") or {}).get("data") or []
    return items[0] if items else {}


def subscription_fields(subscription: StripeDict) -> dict[str, Any]:
    """The columns a Stripe subscription maps to: status, the plan from its first item, and the
    period from that item too (the current API has no period on the subscription itself)."""
    item = first_item(subscription)
    price = item.get("price") or {}
    return {
        "customer_id": object_id(subscription.get("customer")),
        "status": subscription.get("status"),
        "price_id": object_id(price),
        "plan_interval": (price.get("recurring") or {}).get("interval"),
        "current_period_start": ms_from_seconds(item.get("current_period_start")),
        "current_period_end": ms_from_seconds(item.get("current_period_end")),
        "cancel_at_period_end": bool(subscription.get("cancel_at_period_end")),
        "cancel_at": ms_from_seconds(subscription.get("cancel_at")),
        "canceled_at": ms_from_seconds(subscription.get("canceled_at")),
        "ended_at": ms_from_seconds(subscription.get("ended_at")),
        "trial_end": ms_from_seconds(subscription.get("trial_end")),
        "quantity": _quantity(item),
    }


def _quantity(item: StripeDict) -> int | None:
    value = item.get("quantity")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def invoice_subscription_id(invoice: StripeDict) -> str | None:
    """The subscription an invoice bills (`parent.subscription_details` at the current API)."""
    parent = (invoice.get("parent") or {}).get("subscription_details") or {}
    return object_id(parent.get("subscription") or invoice.get("subscription"))
