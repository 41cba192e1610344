"""What the API asks of invoices: the caller's list (our copy, kept from webhooks) and the
upcoming invoice (Stripe's preview, cached), and keeping the Stripe customer's email current."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import update

from app.billing.accounts.rows import AnyUser
from app.billing.accounts.users import customer_email_stale
from app.billing.errors import BillingError, ProviderUnavailable
from app.billing.invoices.store import invoice_columns, invoices_of
from app.billing.store import read_states, write_state
from app.billing.subscriptions.summary import deciding_subscription
from app.billing.time import ms_from_seconds, now_ms
from app.db import outside_transaction, unit_of_work
from app.extensions import db
from app.models import Invoice, User
from app.stripe.gateway import current_gateway

log = logging.getLogger(__name__)

UPCOMING_KEY = "upcoming_invoice:"


@dataclass(frozen=True)
class InvoiceView:
    id: str
    number: str | None
    status: str | None
    billing_reason: str | None
    currency: str | None
    amount_due: int | None
    amount_paid: int | None
    amount_tax: int | None
    total: int | None
    created: int | None  # ms
    hosted_invoice_url: str | None
    invoice_pdf: str | None
    period_start: int | None  # ms
    period_end: int | None  # ms

    @classmethod
    def of_columns(cls, invoice_id: str, columns: dict[str, Any]) -> InvoiceView:
        return cls(
            id=invoice_id,
            number=columns["number"],
            status=columns["status"],
            billing_reason=columns["billing_reason"],
            currency=columns["currency"],
            amount_due=columns["amount_due"],
            amount_paid=columns["amount_paid"],
            amount_tax=columns["amount_tax"],
            total=columns["total"],
            created=ms_from_seconds(columns["stripe_created"]),
            hosted_invoice_url=columns["hosted_invoice_url"],
            invoice_pdf=columns["invoice_pdf"],
            period_start=ms_from_seconds(columns["period_start"]),
            period_end=ms_from_seconds(columns["period_end"]),
        )

    @classmethod
    def of_row(cls, row: Invoice) -> InvoiceView:
        columns = {c: getattr(row, c) for c in invoice_columns({})}
        return cls.of_columns(row.id, columns)


def list_invoices(user: AnyUser) -> list[InvoiceView]:
    """The caller's invoices from our table: no Stripe call, whatever the page load rate."""
    return [InvoiceView.of_row(row) for row in invoices_of(user.stripe_customer_id)]


def upcoming_invoice(user: User) -> InvoiceView | None:
    """What the caller's live subscription will charge next (None: nothing will renew).

    Stripe is asked at most once per UPCOMING_INVOICE_CACHE_SECONDS per subscription, and again
    as soon as the subscription changed (the cache is keyed by its last applied event)."""
    subscription = deciding_subscription(user.subscriptions)
    if (
        subscription is None
        or not subscription.is_live
        or user.stripe_customer_id is None
        or subscription.cancel_at_period_end
    ):
        return None
    # A newer event, another price or status (a plan change through our own API) asks again.
    version = ":".join(
        str(part or "")
        for part in (subscription.last_event_created, subscription.price_id, subscription.status)
    )
    key = UPCOMING_KEY + subscription.id
    now = now_ms()
    ttl_ms = int(current_app.config["UPCOMING_INVOICE_CACHE_SECONDS"]) * 1000
    with unit_of_work():
        cached = read_states(key).get(key)
    entry = _cached_entry(cached)
    if entry and entry["version"] == version and now - entry["fetchedAt"] < ttl_ms:
        return InvoiceView(**entry["invoice"])
    outside_transaction()
    try:
        preview = current_gateway().preview_upcoming_invoice(
            customer_id=user.stripe_customer_id, subscription_id=subscription.id
        )
    except ProviderUnavailable:
        if entry is None:
            raise
        log.warning(
            "Stripe unreachable; serving the upcoming invoice read at %s", entry["fetchedAt"]
        )
        return InvoiceView(**entry["invoice"])
    view = InvoiceView.of_columns("upcoming", invoice_columns(preview))
    with unit_of_work():
        write_state(
            key, json.dumps({"version": version, "fetchedAt": now, "invoice": view.__dict__})
        )
    return view


def _cached_entry(cached: str | None) -> dict[str, Any] | None:
    """The stored preview, unless it was written in another shape (an older release)."""
    try:
        entry = json.loads(cached) if cached else None
        if entry is not None:
            InvoiceView(**entry["invoice"])
        return entry if isinstance(entry, dict) else None
    except (ValueError, TypeError, KeyError):
        return None


def sync_customer_email(user: User) -> bool:
    """Send the user's email to their Stripe customer when it differs from the one last sent
    (a sign-in with a new email): one Stripe call per change, not per request. True if sent.

    Signing in never fails for it: Stripe unreachable is tried again at a later sign-in, a
    refusal is logged once."""
    if not customer_email_stale(user):
        return False
    email, customer_id = str(user.email), str(user.stripe_customer_id)
    outside_transaction()
    try:
        current_gateway().update_customer_email(customer_id, email)
    except ProviderUnavailable as exc:
        log.warning("customer %s email not synced yet: %s", customer_id, exc.code)
        return False
    except BillingError as exc:
        # Stripe refused (the customer was deleted there, say): asking again on every request
        # would only be refused again, so it counts as done; the log says what happened.
        log.error("customer %s email not accepted by Stripe: %s", customer_id, exc.code)
    with unit_of_work():
        db.session.execute(
            update(User).where(User.id == user.id).values(stripe_customer_email=email)
        )
    db.session.refresh(user)
    return True
