"""``POST /v1/invoices/create_preview`` for a subscription: the invoice a change of its items
would produce, computed without changing anything.

Modelled as Stripe does it: with ``subscription_details.items`` swapping a price or a quantity
on the same interval, the preview is the *next* invoice (the prorations, at
``proration_date``, plus the next period at the new price); when the interval changes the
billing cycle restarts, so the preview is the invoice made *now* (the unused time credited, the
new period in full). Without ``subscription_details`` it is the subscription's next invoice as
it stands. Discounts and tax are not modelled."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..errors import StripeError
from ..timeutil import add_interval
from ..wire import list_object
from .invoicing import _amounts, _customer_fields, _parent, _unset_invoice_fields
from .items import interval_of, items_of, price_of
from .lifecycle import current_period
from .lines import make_line, proration_line
from .subscription_requests import resolve_price

Planned = tuple[dict[str, Any], dict[str, Any], dict[str, Any], int, int]


def preview_for_subscription(ctx: Ctx, sub: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    details = p.get("subscription_details") or {}
    now = ctx.now_for(sub["customer"])
    start, end = current_period(ctx, sub)
    at = details.get("proration_date")
    at = min(max(int(at), start), end) if at is not None else now
    planned = _planned_items(ctx, sub, details.get("items") or [])
    old_interval = interval_of(planned[0][1])
    new_interval = interval_of(planned[0][2])
    if any(interval_of(new) != new_interval for _, _, new, _, _ in planned):
        raise StripeError(
            400,
            "Currently all items of a subscription must have the same billing interval.",
            param="subscription_details[items]",
        )
    restarts = new_interval != old_interval and sub["status"] != "trialing"
    prorations: list[dict[str, Any]] = []
    behavior = details.get("proration_behavior") or "create_prorations"
    if sub["status"] != "trialing" and behavior != "none":
        prorations = _prorations(ctx, sub, planned, at, (start, end), restarts)
    if restarts:
        period = (now, add_interval(now, new_interval[0], new_interval[1]))
    else:
        period = (end, add_interval(end, new_interval[0], new_interval[1]))
    regular = [
        make_line(
            ctx,
            amount=(new_price["unit_amount"] or 0) * new_qty,
            currency=new_price["currency"],
            description=f"{new_qty} \u00d7 {new_price.get('nickname') or new_price['id']}",
            price=new_price,
            quantity=new_qty,
            period=period,
            sub=sub,
            item_id=item["id"],
        )
        for item, _, new_price, _, new_qty in planned
    ]
    lines = list(sub.get("_pending_lines", [])) + prorations + regular
    return _invoice(ctx, sub, lines, now, at, period if restarts else (start, end), restarts)


def _planned_items(ctx: Ctx, sub: dict[str, Any], requested: list[dict[str, Any]]) -> list[Planned]:
    """The items as they would be: (item, old price, new price, old quantity, new quantity)."""
    planned: list[Planned] = []
    changes = {c["id"]: c for c in requested if c.get("id")}
    for i, item in enumerate(items_of(ctx.store, sub)):
        change = changes.pop(item["id"], {})
        old_price = price_of(ctx, item)
        new_price = (
            resolve_price(
                ctx, change["price"], f"subscription_details[items][{i}][price]", sub["currency"]
            )
            if change.get("price")
            else old_price
        )
        qty = change.get("quantity")
        new_qty = int(qty) if qty is not None else item["quantity"]
        planned.append((item, old_price, new_price, item["quantity"], new_qty))
    if changes:
        raise StripeError(
            400,
            f"Invalid subscription item: '{next(iter(changes))}'",
            code="resource_missing",
            param="subscription_details[items][0][id]",
        )
    return planned


def _prorations(
    ctx: Ctx,
    sub: dict[str, Any],
    planned: list[Planned],
    at: int,
    period: tuple[int, int],
    restarts: bool,
) -> list[dict[str, Any]]:
    out = []
    for item, old_price, new_price, old_qty, new_qty in planned:
        if old_price["id"] == new_price["id"] and old_qty == new_qty:
            continue
        for price, qty, credit in ((old_price, old_qty, True), (new_price, new_qty, False)):
            if not credit and restarts:
                continue  # the new period is charged in full instead
            line = proration_line(ctx, sub, item, price, qty, at, *period, credit)
            if line is not None:
                out.append(line)
    return out


def _invoice(
    ctx: Ctx,
    sub: dict[str, Any],
    lines: list[dict[str, Any]],
    now: int,
    at: int,
    period: tuple[int, int],
    restarts: bool,
) -> dict[str, Any]:
    customer = ctx.store.require("customer", sub["customer"])
    total = sum(line["amount"] for line in lines)
    return {
        **_unset_invoice_fields(),
        **_customer_fields(customer),
        **_amounts(max(total, 0)),  # a credit larger than the charge goes to the balance
        "id": None,
        "object": "invoice",
        "billing_reason": "subscription_update" if restarts else "subscription_cycle",
        "collection_method": sub.get("collection_method") or "charge_automatically",
        "created": now,
        "currency": sub["currency"],
        "lines": list_object(lines, "/v1/invoices/upcoming/lines"),
        "parent": _parent(sub),
        "period_start": period[0],
        "period_end": period[0] if restarts else period[1],
        "subscription": sub["id"],
        "subscription_proration_date": at,
        "total": total,
        "subtotal": total,
        "next_payment_attempt": now if restarts else period[1],
    }
