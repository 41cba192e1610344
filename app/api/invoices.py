"""GET /api/invoices (the caller's, from our copy), GET /api/invoices/upcoming and
POST /api/create-credit-pack-session (a one-time purchase of generations)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app import audit
from app.api.invoice_schemas import CreditPackRequest, InvoicesReply, UpcomingInvoiceReply
from app.api.openapi import documented
from app.api.parsing import parse_body
from app.api.schemas import CheckoutSessionOut, CheckoutSessionReply
from app.auth import current_caller, current_user, login_required, login_required_lean
from app.billing.credits.service import start_credit_pack_checkout
from app.billing.invoices.service import InvoiceView, list_invoices, upcoming_invoice
from app.ratelimit import rate_limited

bp = Blueprint("invoices", __name__, url_prefix="/api")


def invoice_out(view: InvoiceView) -> dict[str, Any]:
    return {
        "id": view.id,
        "number": view.number,
        "status": view.status,
        "billingReason": view.billing_reason,
        "currency": view.currency,
        "amountDue": view.amount_due,
        "amountPaid": view.amount_paid,
        "amountTax": view.amount_tax,
        "total": view.total,
        "created": view.created,
        "hostedInvoiceUrl": view.hosted_invoice_url,
        "invoicePdf": view.invoice_pdf,
        "periodStart": view.period_start,
        "periodEnd": view.period_end,
    }


@bp.get("/invoices")
@documented(
    operation_id="listInvoices",
    summary="The caller's invoices (kept from Stripe's webhooks: no Stripe call per request)",
    tags=("invoices",),
    reply=InvoicesReply,
)
@login_required_lean(writes=False)
def invoices() -> dict[str, Any]:
    return {"invoices": [invoice_out(view) for view in list_invoices(current_caller())]}


@bp.post("/create-credit-pack-session")
@documented(
    operation_id="createCreditPackSession",
    summary="Buy a credit pack (Checkout, one-time payment): generations beyond the quota",
    description="400 `unknown_price` when no pack is offered (STRIPE_CREDIT_PACK_PRICE_ID).",
    tags=("checkout",),
    request=CreditPackRequest,
    reply=CheckoutSessionReply,
    errors=(400, 422, 503),
)
@login_required
@rate_limited("checkout")
def create_credit_pack_session() -> dict[str, Any]:
    body = parse_body(CreditPackRequest)
    session = start_credit_pack_checkout(
        current_user(), success_url=body.successUrl, cancel_url=body.cancelUrl
    )
    audit.note(stripe_object=session.id, detail=session.price_id)
    out = CheckoutSessionOut(id=session.id, url=session.url, status=session.status)
    return {"session": out.model_dump(include={"id", "url", "status"})}


@bp.get("/invoices/upcoming")
@documented(
    operation_id="getUpcomingInvoice",
    summary="What the caller's subscription will charge next (Stripe's preview, cached)",
    tags=("invoices",),
    reply=UpcomingInvoiceReply,
    errors=(503,),
)
@login_required
@rate_limited("refresh")
def upcoming() -> dict[str, Any]:
    view = upcoming_invoice(current_user())
    return {"upcoming": invoice_out(view) if view is not None else None}
