"""``POST /v1/invoices/create_preview``: the subscription's next invoice as it stands (with its
pending invoice items and tax), or the invoice a change of its items would make
(registered before ``/v1/invoices/<id>``, which would otherwise take the path)."""

from __future__ import annotations

from typing import Any

from ..billing.preview import preview_invoice
from ..billing.previews import preview_for_subscription
from ..billing.tax import apply_tax
from ..context import Ctx
from ..errors import StripeError
from ..params import AnyVal, Arr, Bool, Int, Meta, Obj, Str, validate
from ..routes import route

ITEM = Obj(
    {
        "id": Str(),
        "price": Str(),
        "quantity": Int(min=0),
        "deleted": Bool(),
        "metadata": Meta(),
        "price_data": AnyVal(),
        "discounts": AnyVal(),
        "tax_rates": AnyVal(),
    }
)
SCHEMA = {
    "customer": Str(),
    "subscription": Str(),
    "subscription_details": Obj(
        {
            "items": Arr(ITEM, max_items=20),
            "proration_behavior": Str(enum=["always_invoice", "create_prorations", "none"]),
            "proration_date": Int(),
            "billing_cycle_anchor": AnyVal(),
            "cancel_at_period_end": Bool(),
            "trial_end": AnyVal(),
        }
    ),
    "automatic_tax": AnyVal(),
    "discounts": AnyVal(),
    "expand": AnyVal(),
    "preview_mode": Str(enum=["next", "recurring"]),
}


@route("POST", "/v1/invoices/create_preview")
def create_preview(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(params, SCHEMA)
    sub_id = p.get("subscription")
    if sub_id is None and p.get("customer"):
        ctx.store.require("customer", p["customer"], "customer")
        live = [
            s
            for s in ctx.store.all("subscription")
            if s["customer"] == p["customer"]
            and s["status"] not in ("canceled", "incomplete_expired")
        ]
        sub_id = live[0]["id"] if live else None
    if sub_id is None:
        raise StripeError(
            400,
            "No upcoming invoices for customer: the sandbox previews subscriptions only.",
            code="invoice_upcoming_none",
        )
    sub = ctx.store.require("subscription", sub_id, "subscription")
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise StripeError(
            400,
            "No upcoming invoices for a canceled subscription.",
            code="invoice_upcoming_none",
            param="subscription",
        )
    if not p.get("subscription_details"):
        customer = ctx.store.require("customer", sub["customer"], "customer")
        return ctx.render(preview_invoice(ctx, customer, sub))
    invoice = preview_for_subscription(ctx, sub, p)
    apply_tax(invoice, ctx.store.require("customer", sub["customer"], "customer"), sub)
    return ctx.render(invoice)
