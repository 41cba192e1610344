"""The upcoming invoice of a subscription (`POST /v1/invoices/create_preview`)."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..ids import new_id
from ..timeutil import next_period_end
from ..wire import list_object
from .invoicing import _amounts, _customer_fields, _parent, _unset_invoice_fields
from .items import interval_of, items_of, price_of
from .lifecycle import current_period
from .lines import invoice_item_line, item_lines, pending_items
from .tax import apply_tax


def preview_invoice(ctx: Ctx, customer: dict[str, Any], sub: dict[str, Any]) -> dict[str, Any]:
    """The invoice the subscription's next renewal would make: nothing is stored, emitted or
    charged; the customer's pending invoice items are on it, as on the real one."""
    old_start, old_end = current_period(ctx, sub)
    interval, count = interval_of(price_of(ctx, items_of(ctx.store, sub)[0]))
    new_end = next_period_end(sub["billing_cycle_anchor"], interval, count, old_end)
    lines = item_lines(ctx, sub, (old_end, new_end)) + [
        invoice_item_line(item) for item in pending_items(ctx, customer["id"], sub["currency"])
    ]
    total = sum(line["amount"] for line in lines)
    invoice_id = "upcoming_" + new_id("in")
    for line in lines:
        line["invoice"] = invoice_id
    invoice = {
        **_unset_invoice_fields(),
        **_customer_fields(customer),
        **_amounts(total),
        "id": invoice_id,
        "object": "invoice",
        "billing_reason": "upcoming",
        "collection_method": sub.get("collection_method") or "charge_automatically",
        "created": old_end,
        "currency": lines[0]["currency"] if lines else sub.get("currency") or "usd",
        "lines": list_object(lines, f"/v1/invoices/{invoice_id}/lines"),
        "next_payment_attempt": old_end,
        "parent": _parent(sub),
        "period_end": old_end,
        "period_start": old_start,
        "subscription": sub["id"],
        "test_clock": customer.get("test_clock"),
    }
    apply_tax(invoice, customer, sub)
    return invoice
