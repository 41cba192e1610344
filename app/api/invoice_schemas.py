"""Replies of GET /api/invoices and GET /api/invoices/upcoming; the credit pack's request."""

from __future__ import annotations

from pydantic import Field

from app.api.schemas import Body, Reply


class InvoiceOut(Reply):
    id: str = Field(description='Stripe\'s invoice id ("upcoming" for the preview)')
    number: str | None
    status: str | None = Field(description="draft, open, paid, uncollectible or void")
    billingReason: str | None
    currency: str | None
    amountDue: int | None = Field(description="in the currency's smallest unit (cents)")
    amountPaid: int | None
    amountTax: int | None = Field(description="tax on the invoice (Stripe Tax); 0 or null: none")
    total: int | None
    created: int | None = Field(description="ms since the epoch")
    hostedInvoiceUrl: str | None = Field(description="Stripe's page to view or pay it")
    invoicePdf: str | None
    periodStart: int | None = Field(description="ms; the period the invoice bills")
    periodEnd: int | None = Field(description="ms")


class CreditPackRequest(Body):
    successUrl: str | None = Field(default=None, max_length=2048)
    cancelUrl: str | None = Field(default=None, max_length=2048)


class InvoicesReply(Reply):
    invoices: list[InvoiceOut] = Field(description="the caller's, newest first (at most 24)")


class UpcomingInvoiceReply(Reply):
    upcoming: InvoiceOut | None = Field(
        description="what the next renewal will charge; null: nothing renews"
    )
