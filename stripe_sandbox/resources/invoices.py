"""Invoices (create, update, finalize, pay, void, mark uncollectible, send, delete a draft,
list, retrieve, lines) and invoice payments."""

from __future__ import annotations

from typing import Any

from ..billing import invoices
from ..billing.preview import preview_invoice
from ..context import Ctx
from ..errors import StripeError
from ..params import LIST_PARAMS, AnyVal, Bool, Int, Meta, Spec, Str, validate
from ..routes import route
from ..wire import list_object, paginate
from .common import list_response, matching_params, retrieve_stored

STATUSES = ["draft", "open", "paid", "uncollectible", "void"]
COLLECTION = Str(enum=["charge_automatically", "send_invoice"])
IGNORED = {
    k: AnyVal()
    for k in [
        "account_tax_ids",
        "automatic_tax",
        "custom_fields",
        "default_tax_rates",
        "discounts",
        "issuer",
        "on_behalf_of",
        "payment_settings",
        "rendering",
        "shipping_cost",
        "shipping_details",
        "transfer_data",
        "effective_at",
        "number",
        "from_invoice",
        "application_fee_amount",
        "default_source",
    ]
}
SETTINGS: dict[str, Spec] = {
    **IGNORED,
    "auto_advance": Bool(),
    "collection_method": COLLECTION,
    "days_until_due": Int(min=0),
    "description": Str(unsettable=True, max_length=1500),
    "footer": Str(unsettable=True),
    "metadata": Meta(),
    "default_payment_method": Str(unsettable=True),
    "statement_descriptor": Str(unsettable=True, max_length=22),
    "due_date": Int(),
}


@route("POST", "/v1/invoices")
def create_invoice(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            **SETTINGS,
            "customer": Str(required=True),
            "currency": Str(),
            "pending_invoice_items_behavior": Str(enum=["exclude", "include"]),
            "subscription": Str(),
        },
    )
    return ctx.render(invoices.new_invoice(ctx, p))


@route("POST", "/v1/invoices/create_preview")  # before /v1/invoices/<invoice_id>
def create_preview(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            "customer": Str(),
            "subscription": Str(),
            "automatic_tax": AnyVal(),
            "expand": AnyVal(),
            "preview_mode": Str(enum=["next", "recurring"]),
        },
    )
    sub = ctx.store.get("subscription", p.get("subscription") or "")
    if sub is None and p.get("customer"):
        live = [
            s
            for s in ctx.store.all("subscription")
            if s["customer"] == p["customer"]
            and s["status"] not in ("canceled", "incomplete_expired")
        ]
        sub = live[0] if live else None
    if sub is None or sub["status"] in ("canceled", "incomplete_expired"):
        who = str(p.get("customer") or p.get("subscription"))
        raise StripeError(
            400, f"No upcoming invoices for customer: {who}", code="invoice_upcoming_none"
        )
    customer = ctx.store.get("customer", sub["customer"])
    assert customer is not None
    return preview_invoice(ctx, customer, sub)


@route("POST", "/v1/invoices/<invoice_id>")
def update_invoice(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    invoice = ctx.store.require("invoice", invoice_id)
    invoices.update_invoice(ctx, invoice, validate(params, SETTINGS))
    return ctx.render(invoice)


@route("DELETE", "/v1/invoices/<invoice_id>")
def delete_invoice(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    validate(params, {})
    invoices.delete_draft(ctx, ctx.store.require("invoice", invoice_id))
    return {"id": invoice_id, "object": "invoice", "deleted": True}


@route("POST", "/v1/invoices/<invoice_id>/finalize")
def finalize_invoice(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    invoice = ctx.store.require("invoice", invoice_id)
    validate(params, {"auto_advance": Bool()})
    invoices.finalize(ctx, invoice)
    return ctx.render(invoice)


@route("POST", "/v1/invoices/<invoice_id>/mark_uncollectible")
def mark_uncollectible(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    invoice = ctx.store.require("invoice", invoice_id)
    validate(params, {})
    invoices.uncollectible(ctx, invoice)
    return ctx.render(invoice)


@route("POST", "/v1/invoices/<invoice_id>/send")
def send_invoice(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    invoice = ctx.store.require("invoice", invoice_id)
    validate(params, {})
    invoices.send(ctx, invoice)
    return ctx.render(invoice)


@route("GET", "/v1/invoices")
def list_invoices(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    keep = matching_params("customer", "subscription", "status", "collection_method")

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
    invoices.pay(ctx, invoice, p)
    return ctx.render(invoice)


@route("POST", "/v1/invoices/<invoice_id>/void")
def void(ctx: Ctx, params: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    invoice = ctx.store.require("invoice", invoice_id)
    validate(params, {})
    invoices.void(ctx, invoice)
    return ctx.render(invoice)


@route("GET", "/v1/invoice_payments")
def list_invoice_payments(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    keep = matching_params("invoice", "status")

    return list_response(
        ctx,
        "invoice_payment",
        params,
        {"invoice": Str(), "status": Str(), "payment": Str()},
        "/v1/invoice_payments",
        keep,
    )


route("GET", "/v1/invoice_payments/<payment_id>")(retrieve_stored("invoice_payment"))
