"""The portal's payment-method update: a new card becomes the customer's and their live
subscriptions' default, and the customer's open invoices are paid with it at once (the
customer is on the page, so a card that asks for 3-D Secure is authenticated there)."""

from __future__ import annotations

from typing import Any

from .. import cards
from ..context import Ctx
from .invoices import pay_invoice
from .payment_methods import new_payment_method

ENDED = ("canceled", "incomplete_expired")


def update_payment_method(ctx: Ctx, customer: dict[str, Any], number: str) -> str | None:
    """Returns an error message for the page, or None when done."""
    card = cards.lookup(number)
    if card is None:
        return cards.INVALID_NUMBER
    if card.behavior == "decline":
        return cards.DECLINED
    pm = new_payment_method(ctx, card, created=ctx.now_for(customer["id"]))
    pm["customer"] = customer["id"]
    ctx.emit("payment_method.attached", pm)
    if card.behavior in cards.AUTHENTICATING:
        ctx.authenticated.add(pm["id"])
    before = ctx.render(customer)
    settings = customer.setdefault("invoice_settings", {})
    settings["default_payment_method"] = pm["id"]
    ctx.emit_updated("customer.updated", customer, before)
    for sub in ctx.store.all("subscription"):
        if sub["customer"] == customer["id"] and sub["status"] not in ENDED:
            was = ctx.render(sub)
            sub["default_payment_method"] = pm["id"]
            ctx.emit_updated("customer.subscription.updated", sub, was)
    for invoice in ctx.store.all("invoice"):
        if (
            invoice["customer"] == customer["id"]
            and invoice["status"] == "open"
            and invoice["amount_remaining"] > 0
        ):
            pay_invoice(ctx, invoice, pm["id"])
    return None
