"""Invoices (list, retrieve, lines, pay, void) and invoice payments."""

from __future__ import annotations

from typing import Any

from .. import billing, cards
from ..context import Ctx
from ..routes import route
from ..wire import LIST_PARAMS, Bool, Str, StripeError, bad_state, list_object, paginate, validate
from .common import list_response, retrieve_stored

STATUSES = ["draft", "open", "paid", "uncollectible", "void"]


@route("GET", "/v1/invoices")
def list_invoices(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        for key in ("customer", "subscription", "status", "collection_method"):
            if p.get(key) and o[key] != p[key]:
                return False
        return True

    return list_response(
        ctx,
        "invoice",
        params,
        {
            "customer": Str(),
            "subscription": Str(),
            "status": Str(enum=STATUSES),
            "collection_method": Str(enum=["charge_automatically", "send_invoice"]),
            "due_date": Str(),
            "customer_account": Str(),
        },
        "/v1/invoices",
        keep,
    )


route("GET", "/v1/invoices/<invoice_id>")(retrieve_stored("invoice"))


@route("GET", "/v1/invoices/<invoice_id>/lines")
def list_lines(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    invoice = ctx.store.require("invoice", invoice_id)
    p = validate(params, dict(LIST_PARAMS))
    lines = invoice["lines"]["data"]
    page, has_more = paginate(lines, p, "invoice line item")
    return list_object(page, f"/v1/invoices/{invoice_id}/lines", has_more)


def pay_invoice(ctx: Ctx, invoice: dict[str, Any], payment_method: str | None = None) -> bool:
    """Attempt an open invoice now; a paid one may reactivate its subscription."""
    sub = ctx.store.get("subscription", invoice.get("subscription") or "")
    before = ctx.render(sub) if sub else None
    paid = billing.attempt_payment(ctx, invoice, sub, dunning=False, payment_method=payment_method)
    if (
        paid
        and sub is not None
        and before is not None
        and sub["status"] in ("past_due", "unpaid", "incomplete")
        and not billing.has_unpaid(ctx, sub)
    ):
        sub["status"] = "active"
        ctx.emit_updated("customer.subscription.updated", sub, before)
    return paid


@route("POST", "/v1/invoices/<invoice_id>/pay")
def pay(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    invoice = ctx.store.require("invoice", invoice_id)
    p = validate(
        params,
        {
            "payment_method": Str(),
            "off_session": Bool(),
            "paid_out_of_band": Bool(),
            "forgive": Bool(),
            "source": Str(),
            "mandate": Str(),
        },
    )
    if invoice["status"] == "paid":
        raise bad_state("Invoice is already paid.")
    if invoice["status"] == "draft":
        billing.finalize_invoice(ctx, invoice)
    if invoice["status"] != "open":
        raise bad_state(f"You can only pay an invoice that is open (status: {invoice['status']}).")
    if p.get("paid_out_of_band"):
        billing.mark_paid(ctx, invoice)
        return ctx.render(invoice)
    pm_id = p.get("payment_method")
    if pm_id:
        ctx.store.require("payment_method", pm_id, "payment_method")
    if not pay_invoice(ctx, invoice, pm_id):
        raise StripeError(
            402,
            cards.DECLINED,
            type="card_error",
            code="card_declined",
            decline_code="generic_decline",
            payment_intent={"id": invoice.get("_payment_intent")},
        )
    return ctx.render(invoice)


@route("POST", "/v1/invoices/<invoice_id>/void")
def void(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    invoice = ctx.store.require("invoice", invoice_id)
    validate(params, {})
    if invoice["status"] != "open":
        raise bad_state(f"You can only void an open invoice (status: {invoice['status']}).")
    billing.void_invoice(ctx, invoice)
    return ctx.render(invoice)


@route("GET", "/v1/invoice_payments")
def list_invoice_payments(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        if p.get("invoice") and o["invoice"] != p["invoice"]:
            return False
        return not (p.get("status") and o["status"] != p["status"])

    return list_response(
        ctx,
        "invoice_payment",
        params,
        {"invoice": Str(), "status": Str(), "payment": Str()},
        "/v1/invoice_payments",
        keep,
    )


route("GET", "/v1/invoice_payments/<payment_id>")(retrieve_stored("invoice_payment"))
