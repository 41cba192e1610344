"""The invoices table and the user's payment action, written from invoice.* webhooks.

Each write happens in the applier's transaction under the user's row lock (the same lock the
subscription writes take), so an invoice's events and its subscription's events for one user
never interleave; `last_event_created` keeps an older event, delivered late, from undoing a
newer one (a payment_failed arriving after the invoice.paid that followed it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.billing.accounts.users import user_by_customer
from app.extensions import db
from app.models import Invoice, User
from app.stripe.gateway import StripeDict
from app.stripe.objects import invoice_subscription_id, object_id

# Invoices that no longer ask for money: an action about one of them is over.
SETTLED_STATUSES = frozenset({"paid", "void", "uncollectible"})
# The subscription paid again, or nothing more can be paid on it: no action remains.
RECOVERED_STATUSES = frozenset({"active", "trialing", "canceled", "incomplete_expired"})
LIST_LIMIT = 24


def tax_amount(invoice: StripeDict) -> int | None:
    """The invoice's tax: the sum of `total_taxes` (current API), else the older `tax` field."""
    taxes = invoice.get("total_taxes")
    if isinstance(taxes, list):
        return sum(int(t.get("amount") or 0) for t in taxes if isinstance(t, dict))
    legacy = invoice.get("tax")
    return int(legacy) if isinstance(legacy, int) else None


def _billed_period(invoice: StripeDict) -> tuple[int | None, int | None]:
    # A subscription invoice's own period_start/end is the period before the one it bills;
    # its line carries the period the customer pays for.
    lines = (invoice.get("lines") or {}).get("data") or []
    period = (lines[0].get("period") if lines and isinstance(lines[0], dict) else None) or {}
    start = period.get("start", invoice.get("period_start"))
    end = period.get("end", invoice.get("period_end"))
    return start, end


def invoice_columns(invoice: StripeDict) -> dict[str, Any]:
    start, end = _billed_period(invoice)
    return {
        "customer_id": object_id(invoice.get("customer")),
        "subscription_id": invoice_subscription_id(invoice),
        "number": invoice.get("number"),
        "status": invoice.get("status"),
        "billing_reason": invoice.get("billing_reason"),
        "currency": invoice.get("currency"),
        "amount_due": invoice.get("amount_due"),
        "amount_paid": invoice.get("amount_paid"),
        "amount_tax": tax_amount(invoice),
        "total": invoice.get("total"),
        "hosted_invoice_url": invoice.get("hosted_invoice_url"),
        "invoice_pdf": invoice.get("invoice_pdf"),
        "period_start": start,
        "period_end": end,
        "stripe_created": invoice.get("created"),
    }


# An invoice's status only moves forward (an uncollectible one may still be paid or voided).
STATUS_RANK = {"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}


def is_stale(row: Invoice, event_created: int, status: Any) -> bool:
    """An event older than the one applied, or from the same second with a status behind the
    stored one (Stripe stamps finalized and paid with one second): it would undo newer news."""
    applied = row.last_event_created or 0
    if event_created != applied:
        return event_created < applied
    return STATUS_RANK.get(str(status), 0) < STATUS_RANK.get(str(row.status), 0)


def store_invoice(invoice: StripeDict, event_created: int, action: str | None = None) -> None:
    """Keep the invoice (unless a newer event already did) and update its owner's action:
    `action` ("fix_payment"/"confirm_payment") is set while the invoice is open, and any
    action about an invoice that is now settled is cleared."""
    invoice_id = object_id(invoice.get("id"))
    if invoice_id is None:
        return
    customer_id = object_id(invoice.get("customer"))
    user = user_by_customer(customer_id) if customer_id else None  # locks the owner's row
    row = db.session.get(Invoice, invoice_id, with_for_update=True)
    if row is not None and is_stale(row, event_created, invoice.get("status")):
        return
    if row is None:
        row = Invoice(id=invoice_id)
        db.session.add(row)
    for column, value in invoice_columns(invoice).items():
        setattr(row, column, value)
    row.last_event_created = event_created
    if user is not None:
        row.user_id = user.id
        _update_action(user, row, action, event_created)
    db.session.flush()


def _update_action(user: User, row: Invoice, action: str | None, event_created: int) -> None:
    if row.status in SETTLED_STATUSES:
        if user.payment_action_invoice == row.id:
            clear_action(user)
        return
    if action is None or row.status != "open":
        return
    since = user.payment_action_since if user.payment_action_invoice == row.id else None
    user.payment_action = action
    user.payment_action_invoice = row.id
    user.payment_action_url = row.hosted_invoice_url
    user.payment_action_since = since or event_created * 1000


def clear_action(user: User) -> None:
    user.payment_action = None
    user.payment_action_invoice = None
    user.payment_action_url = None
    user.payment_action_since = None


def clear_action_if_recovered(
    user_id: str | None, subscription_id: str, status: str | None
) -> None:
    """A subscription that is active again (paid another way, e.g. a new card in the portal)
    or over ends the action about its invoices."""
    if user_id is None or status not in RECOVERED_STATUSES:
        return
    user = db.session.get(User, user_id)
    if user is None or user.payment_action_invoice is None:
        return
    billed = db.session.execute(
        select(Invoice.subscription_id).where(Invoice.id == user.payment_action_invoice)
    ).scalar_one_or_none()
    if billed == subscription_id:
        clear_action(user)
        db.session.flush()


def invoices_of(customer_id: str | None, limit: int = LIST_LIMIT) -> list[Invoice]:
    """The customer's invoices, newest first (drafts are not shown: they may still change)."""
    if customer_id is None:
        return []
    return list(
        db.session.execute(
            select(Invoice)
            .where(Invoice.customer_id == customer_id, Invoice.status != "draft")
            .order_by(Invoice.stripe_created.desc(), Invoice.id.desc())
            .limit(limit)
        ).scalars()
    )
