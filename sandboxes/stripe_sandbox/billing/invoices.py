"""The invoice operations of the API: invoice items, one-off invoices (create, update,
finalize, pay, void, mark uncollectible, delete a draft)."""

from __future__ import annotations

from typing import Any

from .. import cards
from ..context import Ctx
from ..errors import StripeError, bad_state, missing
from ..ids import new_id
from ..params import apply_metadata
from ..wire import list_object
from .constants import DAY
from .invoicing import (
    attempt_payment,
    build_invoice,
    finalize_invoice,
    has_unpaid,
    mark_paid,
    mark_uncollectible,
    void_invoice,
)
from .lines import invoice_item_line, pending_items
from .payment_methods import attached_payment_method, declined

# ------------------------------------------------------------ invoice items


def new_invoice_item(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    customer = ctx.store.require("customer", p["customer"], "customer")
    amount, currency, pricing = _item_amount(ctx, p)
    quantity = p.get("quantity") or 1
    now = ctx.now_for(customer["id"])
    period = p.get("period") or {}
    item = {
        "id": new_id("ii"),
        "object": "invoiceitem",
        "amount": amount,
        "currency": currency,
        "customer": customer["id"],
        "customer_account": None,
        "date": now,
        "description": p.get("description"),
        "discountable": p.get("discountable", True) is not False,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": apply_metadata({}, p.get("metadata")),
        "net_amount": amount,
        "parent": None,
        "period": {"start": period.get("start") or now, "end": period.get("end") or now},
        "pricing": pricing,
        "proration": False,
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "tax_rates": [],
        "test_clock": customer.get("test_clock"),
    }
    ctx.store.insert(item)
    if p.get("invoice"):
        add_item_to_invoice(ctx, item, ctx.store.require("invoice", p["invoice"], "invoice"))
    ctx.emit("invoiceitem.created", item)
    return item


def _item_amount(ctx: Ctx, p: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """``(amount, currency, pricing)`` from ``price`` or ``amount``/``unit_amount``."""
    quantity = p.get("quantity") or 1
    if p.get("price"):
        price = ctx.store.require("price", p["price"], "price")
        unit = price["unit_amount"] or 0
        details = {"price": price["id"], "product": price["product"]}
        found = {"price_details": details, "unit_amount_decimal": str(unit)}
        return unit * quantity, price["currency"], {"type": "price_details", **found}
    if not p.get("currency"):
        raise missing("currency")
    if p.get("amount") is not None:
        amount, unit = p["amount"], None
    elif p.get("unit_amount") is not None:
        amount, unit = p["unit_amount"] * quantity, str(p["unit_amount"])
    else:
        raise missing("amount")
    pricing: dict[str, Any] = {
        "type": "price_details",
        "price_details": None,
        "unit_amount_decimal": unit,
    }
    return amount, p["currency"].lower(), pricing


def add_item_to_invoice(ctx: Ctx, item: dict[str, Any], invoice: dict[str, Any]) -> None:
    if invoice["status"] != "draft":
        raise bad_state("You can only add invoice items to draft invoices.", "invoice")
    if invoice["customer"] != item["customer"]:
        raise bad_state("The invoice belongs to another customer.", "invoice")
    item["invoice"] = invoice["id"]
    invoice["lines"]["data"].append(invoice_item_line(item))
    _retotal(invoice)


def _retotal(invoice: dict[str, Any]) -> None:
    total = sum(line["amount"] for line in invoice["lines"]["data"])
    for key in ("amount_due", "amount_remaining", "subtotal", "subtotal_excluding_tax"):
        invoice[key] = total
    invoice["total"] = invoice["total_excluding_tax"] = total
    if invoice["currency"] is None and invoice["lines"]["data"]:
        invoice["currency"] = invoice["lines"]["data"][0]["currency"]


def delete_invoice_item(ctx: Ctx, item: dict[str, Any]) -> None:
    invoice = ctx.store.get("invoice", item["invoice"]) if item["invoice"] else None
    if invoice is not None and invoice["status"] != "draft":
        raise bad_state("You cannot delete an invoice item that is on a finalized invoice.")
    if invoice is not None:
        invoice["lines"]["data"] = [
            line
            for line in invoice["lines"]["data"]
            if (line["parent"].get("invoice_item_details") or {}).get("invoice_item") != item["id"]
        ]
        _retotal(invoice)
    ctx.emit("invoiceitem.deleted", item)
    item["_deleted"] = True


# ---------------------------------------------------------- one-off invoices


def new_invoice(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    """A draft invoice for a customer (``billing_reason=manual``); pending invoice items
    are included with ``pending_invoice_items_behavior=include``."""
    customer = ctx.store.require("customer", p["customer"], "customer")
    now = ctx.now_for(customer["id"])
    invoice = build_invoice(ctx, customer, None, [], "manual", (now, now), emit=False)
    invoice["currency"] = (p.get("currency") or "").lower() or None
    invoice["auto_advance"] = bool(p.get("auto_advance"))
    invoice["collection_method"] = p.get("collection_method") or "charge_automatically"
    _apply_settings(invoice, p)
    if p.get("pending_invoice_items_behavior") == "include":
        for item in pending_items(ctx, customer["id"], invoice["currency"]):
            add_item_to_invoice(ctx, item, invoice)
    if invoice["currency"] is None:
        invoice["currency"] = "usd"
    ctx.emit("invoice.created", invoice)
    return invoice


def _apply_settings(invoice: dict[str, Any], p: dict[str, Any]) -> None:
    for key in ("description", "footer", "default_payment_method", "statement_descriptor"):
        if key in p:
            invoice[key] = p[key]
    if "days_until_due" in p:
        invoice["_days_until_due"] = p["days_until_due"]
    if "metadata" in p:
        invoice["metadata"] = apply_metadata(invoice["metadata"], p["metadata"])


def update_invoice(ctx: Ctx, invoice: dict[str, Any], p: dict[str, Any]) -> None:
    if invoice["status"] != "draft" and set(p) - {"metadata", "description", "footer"}:
        raise bad_state(f"You can only update a draft invoice (status: {invoice['status']}).")
    before = ctx.render(invoice)
    _apply_settings(invoice, p)
    for key in ("auto_advance", "collection_method"):
        if key in p:
            invoice[key] = p[key]
    ctx.emit_updated("invoice.updated", invoice, before)


def finalize(ctx: Ctx, invoice: dict[str, Any]) -> None:
    if invoice["status"] != "draft":
        raise bad_state(
            f"This invoice is already finalized, you can't re-finalize a non-draft invoice "
            f"(status: {invoice['status']})."
        )
    finalize_invoice(ctx, invoice)
    days = invoice.get("_days_until_due")
    if invoice["collection_method"] == "send_invoice" and days is not None:
        invoice["due_date"] = invoice["effective_at"] + days * DAY
    if invoice["amount_due"] == 0:
        mark_paid(ctx, invoice)


def delete_draft(ctx: Ctx, invoice: dict[str, Any]) -> None:
    if invoice["status"] != "draft" or invoice["subscription"]:
        raise bad_state("You can only delete draft invoices that are not from a subscription.")
    for item in ctx.store.all("invoiceitem"):
        if item["invoice"] == invoice["id"]:
            ctx.store.touch(item)["invoice"] = None
    ctx.emit("invoice.deleted", invoice)
    invoice["_deleted"] = True


def void(ctx: Ctx, invoice: dict[str, Any]) -> None:
    if invoice["status"] != "open":
        raise bad_state(f"You can only void an open invoice (status: {invoice['status']}).")
    void_invoice(ctx, invoice)


def send(ctx: Ctx, invoice: dict[str, Any]) -> None:
    """``send``: a finalized invoice is emailed (here: the event only)."""
    if invoice["status"] != "open":
        raise bad_state(f"You can only send an open invoice (status: {invoice['status']}).")
    ctx.emit("invoice.sent", invoice)


def uncollectible(ctx: Ctx, invoice: dict[str, Any]) -> None:
    if invoice["status"] != "open":
        raise bad_state(
            f"You can only mark an open invoice uncollectible (status: {invoice['status']})."
        )
    mark_uncollectible(ctx, invoice)


# ------------------------------------------------------------------- paying


def pay_invoice(ctx: Ctx, invoice: dict[str, Any], payment_method: str | None = None) -> bool:
    """Attempt an open invoice now; a paid one may reactivate its subscription."""
    sub = ctx.store.get("subscription", invoice.get("subscription") or "")
    before = ctx.render(sub) if sub else None
    paid = attempt_payment(ctx, invoice, sub, dunning=False, payment_method=payment_method)
    if (
        paid
        and sub is not None
        and before is not None
        and sub["status"] in ("past_due", "unpaid", "incomplete")
        and not has_unpaid(ctx, sub)
    ):
        sub["status"] = "active"
        ctx.emit_updated("customer.subscription.updated", sub, before)
    return paid


def pay(ctx: Ctx, invoice: dict[str, Any], p: dict[str, Any]) -> None:
    """``POST /v1/invoices/:id/pay``: finalizes a draft, then charges (or records an
    out-of-band payment); a decline is Stripe's 402."""
    if invoice["status"] == "paid":
        raise bad_state("Invoice is already paid.")
    if invoice["status"] == "draft":
        finalize(ctx, invoice)
        if invoice["status"] == "paid":
            return
    if invoice["status"] != "open":
        raise bad_state(f"You can only pay an invoice that is open (status: {invoice['status']}).")
    if p.get("paid_out_of_band"):
        mark_paid(ctx, invoice)
        return
    pm_id = p.get("payment_method") or invoice.get("default_payment_method")
    if pm_id and cards.magic_card(pm_id) is not None:
        pm_id = attached_payment_method(ctx, pm_id, invoice["customer"], "payment_method")["id"]
    elif pm_id:
        ctx.store.require("payment_method", pm_id, "payment_method")
    if not pay_invoice(ctx, invoice, pm_id):
        pi = ctx.store.get("payment_intent", invoice.get("_payment_intent") or "")
        if pi is not None and pi["status"] == "requires_action":
            raise StripeError(
                402,
                "This payment requires additional user action before it can be completed.",
                type="card_error",
                code="invoice_payment_intent_requires_action",
                payment_intent={"id": pi["id"]},
            )
        raise declined(payment_intent={"id": invoice.get("_payment_intent")})


def invoice_lines(invoice: dict[str, Any]) -> dict[str, Any]:
    return list_object(invoice["lines"]["data"], f"/v1/invoices/{invoice['id']}/lines")
