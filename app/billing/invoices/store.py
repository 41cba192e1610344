"""The invoices table and the user's payment action, written from invoice.* webhooks.

Each invoice event is one guarded upsert (the ordering rule sits in its ON CONFLICT ... WHERE,
so an older event, delivered late, never undoes a newer one: a payment_failed arriving after
the invoice.paid that followed it) and, when it applied, one conditional UPDATE of the owner's
action: set while the invoice is open and failed or waits for 3-D Secure, cleared once it is
paid, void or uncollectible. No row is read first. A subscription that recovers clears the
action with its summary (`app/billing/subscriptions/mirror.py`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, literal, or_, select, update

from app.billing.subscriptions.mirror import NO_PAYMENT_ACTION
from app.db import upsert
from app.extensions import db
from app.models import Invoice, User, utcnow
from app.stripe.gateway import StripeDict
from app.stripe.objects import invoice_subscription_id, object_id

# Invoices that no longer ask for money: an action about one of them is over.
SETTLED_STATUSES = frozenset({"paid", "void", "uncollectible"})
LIST_LIMIT = 24
# An invoice's status only moves forward (an uncollectible one may still be paid or voided).
STATUS_RANK = {"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}

_invoices = Invoice.__table__.c
_users = User.__table__.c


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


def _rank(status: Any) -> Any:
    return case(*((status == name, rank) for name, rank in STATUS_RANK.items()), else_=literal(0))


def _upsert(values: dict[str, Any]) -> Any:
    """INSERT, or UPDATE unless the stored row came from a newer event (or from the same second
    with a status further on: Stripe stamps finalized and paid with one second). RETURNING
    says whether it applied."""
    statement = upsert(Invoice).values(**values)
    new = statement.excluded
    newer = or_(
        _invoices.last_event_created.is_(None),
        _invoices.last_event_created < new.last_event_created,
        and_(
            _invoices.last_event_created == new.last_event_created,
            _rank(_invoices.status) <= _rank(new.status),
        ),
    )
    changed = {name: getattr(new, name) for name in values if name != "id"}
    return statement.on_conflict_do_update(
        index_elements=[_invoices.id], set_=changed, where=newer
    ).returning(_invoices.id)


def store_invoice(invoice: StripeDict, event_created: int, action: str | None = None) -> None:
    """Keep the invoice (unless a newer event already did) and update its owner's action:
    `action` ("fix_payment"/"confirm_payment") is set while the invoice is open; any action
    about an invoice that is now settled is cleared."""
    invoice_id = object_id(invoice.get("id"))
    if invoice_id is None:
        return
    columns = invoice_columns(invoice)
    customer_id = columns["customer_id"]
    owner = select(_users.id).where(_users.stripe_customer_id == customer_id).scalar_subquery()
    values = {
        "id": invoice_id,
        **columns,
        "user_id": owner,
        "last_event_created": event_created,
        "updated_at": utcnow(),
    }
    applied = db.session.execute(_upsert(values)).first() is not None
    if not applied or customer_id is None:
        return
    of_customer = update(User.__table__).where(_users.stripe_customer_id == customer_id)
    if columns["status"] in SETTLED_STATUSES:
        db.session.execute(
            of_customer.where(_users.payment_action_invoice == invoice_id).values(NO_PAYMENT_ACTION)
        )
    elif action is not None and columns["status"] == "open":
        same = _users.payment_action_invoice == invoice_id
        db.session.execute(
            of_customer.values(
                payment_action=action,
                payment_action_invoice=invoice_id,
                payment_action_url=columns["hosted_invoice_url"],
                payment_action_since=case(
                    (same, _users.payment_action_since), else_=event_created * 1000
                ),
            )
        )


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
