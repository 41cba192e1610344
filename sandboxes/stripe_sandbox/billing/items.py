"""Subscription items, prices on them, and the rendering of subscriptions,
items and invoices."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..ids import new_id
from ..store import Store, renderer, strip_private
from ..wire import list_object
from .catalog import plan_from_price


@renderer("subscription_item")
def render_item(store: Store, item: dict[str, Any]) -> dict[str, Any]:
    out = strip_private(item)
    price = store.get("price", item["price"])
    if price is not None:
        out["price"] = strip_private(price)
        out["plan"] = plan_from_price(price)
    return out


def items_of(store: Store, sub: dict[str, Any]) -> list[dict[str, Any]]:
    items = [store.get("subscription_item", i) for i in sub["_item_ids"]]
    return [i for i in items if i is not None and not i.get("_deleted")]


@renderer("subscription")
def render_subscription(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    out = strip_private(sub)
    out["items"] = list_object(
        [render_item(store, i) for i in items_of(store, sub)],
        f"/v1/subscription_items?subscription={sub['id']}",
    )
    return out


@renderer("invoice")
def render_invoice(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    return strip_private(invoice)


def invoice_payments(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    """The includable ``payments`` list of an invoice."""
    data = [strip_private(p) for p in store.all("invoice_payment") if p["invoice"] == invoice["id"]]
    return list_object(data, f"/v1/invoice_payments?invoice={invoice['id']}")


def price_of(ctx: Ctx, item: dict[str, Any]) -> dict[str, Any]:
    price = ctx.store.get("price", item["price"])
    assert price is not None
    return price


def new_item(
    ctx: Ctx,
    sub: dict[str, Any],
    price: dict[str, Any],
    quantity: int,
    start: int,
    end: int,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    item = {
        "id": new_id("si"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": start,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": dict(metadata or {}),
        "price": price["id"],
        "quantity": quantity,
        "subscription": sub["id"],
        "tax_rates": [],
    }
    ctx.store.insert(item)
    sub["_item_ids"].append(item["id"])
    return item


def money(amount: int, currency: str) -> str:
    sign = "-" if amount < 0 else ""
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency, "")
    value = f"{abs(amount) / 100:.2f}"
    return f"{sign}{symbol}{value}" if symbol else f"{sign}{value} {currency.upper()}"


def product_name(ctx: Ctx, price: dict[str, Any]) -> str:
    product = ctx.store.get("product", price["product"])
    return product["name"] if product else price["product"]


def item_description(ctx: Ctx, price: dict[str, Any], quantity: int) -> str:
    rec = price.get("recurring") or {}
    every = rec.get("interval", "")
    if rec.get("interval_count", 1) > 1:
        every = f"{rec['interval_count']} {every}s"
    amount = money(price["unit_amount"] or 0, price["currency"])
    return f"{quantity} \u00d7 {product_name(ctx, price)} (at {amount} / {every})"


def interval_of(price: dict[str, Any]) -> tuple[str, int]:
    rec = price["recurring"]
    return rec["interval"], rec["interval_count"]
