"""Invoice lines: one per subscription item for a period, prorations, invoice items."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..context import Ctx
from ..ids import new_id
from .items import item_description, items_of, price_of, product_name


def make_line(
    ctx: Ctx,
    *,
    amount: int,
    currency: str,
    description: str,
    price: dict[str, Any],
    quantity: int,
    period: tuple[int, int],
    sub: dict[str, Any] | None,
    item_id: str | None,
    proration: bool = False,
) -> dict[str, Any]:
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": description,
        "discount_amounts": [],
        "discountable": not proration,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "parent": {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"] if sub else None,
                "subscription_item": item_id,
            },
        },
        "period": {"start": period[0], "end": period[1]},
        "pretax_credit_amounts": [],
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price["id"], "product": price["product"]},
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "subscription": sub["id"] if sub else None,
        "subtotal": amount,
        "taxes": [],
    }


def item_lines(
    ctx: Ctx, sub: dict[str, Any], period: tuple[int, int], trial: bool = False
) -> list[dict[str, Any]]:
    lines = []
    for item in items_of(ctx.store, sub):
        price = price_of(ctx, item)
        qty = item["quantity"]
        if trial:
            amount = 0
            desc = f"Trial period for {product_name(ctx, price)}"
        else:
            amount = (price["unit_amount"] or 0) * qty
            desc = item_description(ctx, price, qty)
        lines.append(
            make_line(
                ctx,
                amount=amount,
                currency=price["currency"],
                description=desc,
                price=price,
                quantity=qty,
                period=period,
                sub=sub,
                item_id=item["id"],
            )
        )
    return lines


def proration_line(
    ctx: Ctx,
    sub: dict[str, Any],
    item: dict[str, Any],
    price: dict[str, Any],
    quantity: int,
    now: int,
    start: int,
    end: int,
    credit: bool,
) -> dict[str, Any] | None:
    if end <= start or now >= end:
        return None
    fraction = (end - max(now, start)) / (end - start)
    amount = round((price["unit_amount"] or 0) * quantity * fraction)
    if amount == 0:
        return None
    name = product_name(ctx, price)
    when = datetime.fromtimestamp(now, tz=UTC).strftime("%d %b %Y")
    desc = (
        f"Unused time on {quantity} \u00d7 {name} after {when}"
        if credit
        else f"Remaining time on {quantity} \u00d7 {name} after {when}"
    )
    return make_line(
        ctx,
        amount=-amount if credit else amount,
        currency=price["currency"],
        description=desc,
        price=price,
        quantity=quantity,
        period=(max(now, start), end),
        sub=sub,
        item_id=item["id"],
        proration=True,
    )


def invoice_item_line(item: dict[str, Any]) -> dict[str, Any]:
    """The invoice line of an invoice item."""
    price = (item.get("pricing") or {}).get("price_details")
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item["description"],
        "discount_amounts": [],
        "discountable": item["discountable"],
        "discounts": [],
        "invoice": item["invoice"],
        "livemode": False,
        "metadata": dict(item["metadata"]),
        "parent": {
            "type": "invoice_item_details",
            "invoice_item_details": {
                "invoice_item": item["id"],
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": None,
            },
            "subscription_item_details": None,
        },
        "period": dict(item["period"]),
        "pretax_credit_amounts": [],
        "pricing": {
            "type": "price_details",
            "price_details": price,
            "unit_amount_decimal": item["pricing"]["unit_amount_decimal"],
        },
        "quantity": item["quantity"],
        "quantity_decimal": str(item["quantity"]),
        "subscription": None,
        "subtotal": item["amount"],
        "taxes": [],
    }


def pending_items(ctx: Ctx, customer_id: str, currency: str | None) -> list[dict[str, Any]]:
    """The customer's invoice items on no invoice yet (in ``currency`` if given), oldest
    first; the next invoice takes them."""
    found = [
        i
        for i in ctx.store.all("invoiceitem")
        if i["customer"] == customer_id
        and i["invoice"] is None
        and (currency is None or i["currency"] == currency)
    ]
    return [ctx.store.touch(i) for i in reversed(found)]
