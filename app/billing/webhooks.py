"""Webhook events: record and apply in one transaction, exactly once per event id.

verify (gateway) -> record (`webhook_events`, ON CONFLICT DO NOTHING + row lock) -> apply
(handler for the type) -> commit. A repeated id that was already processed is acknowledged and
not applied again. A failing apply rolls back everything and leaves the failure (error,
attempts) on the event row for operators; the caller answers 5xx so Stripe retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from app.billing.checkout import fulfil_checkout_session
from app.billing.stripe_objects import object_id
from app.billing.subscriptions import apply_subscription
from app.billing.usage_periods import reset_usage_for_renewal
from app.billing.users import user_by_customer
from app.database import insert_or_ignore
from app.extensions import db
from app.models import WebhookEvent, utcnow
from app.stripe_gateway import StripeDict, StripeGateway

log = logging.getLogger(__name__)

Handler = Callable[[StripeDict, int, StripeGateway], None]

MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True)
class Outcome:
    event_id: str
    status: str  # "applied", "duplicate" or "ignored" (a type we record but don't act on)


def _on_checkout_completed(session: StripeDict, created: int, gateway: StripeGateway) -> None:
    if session.get("mode") == "subscription":
        fulfil_checkout_session(session)


def _on_subscription_changed(
    subscription: StripeDict, created: int, gateway: StripeGateway
) -> None:
    apply_subscription(subscription, event_created=created, reread=gateway.retrieve_subscription)


def _on_invoice_paid(invoice: StripeDict, created: int, gateway: StripeGateway) -> None:
    reset_usage_for_renewal(invoice)


def _on_invoice_payment_failed(invoice: StripeDict, created: int, gateway: StripeGateway) -> None:
    # The subscription's own customer.subscription.updated (to past_due) carries the state.
    customer = object_id(invoice.get("customer"))
    user = user_by_customer(customer) if customer else None
    log.warning(
        "payment failed: invoice=%s customer=%s user=%s attempt=%s",
        invoice.get("id"),
        customer,
        user.id if user else None,
        invoice.get("attempt_count"),
    )


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _on_checkout_completed,
    "customer.subscription.created": _on_subscription_changed,
    "customer.subscription.updated": _on_subscription_changed,
    "customer.subscription.deleted": _on_subscription_changed,
    "customer.subscription.paused": _on_subscription_changed,
    "customer.subscription.resumed": _on_subscription_changed,
    "invoice.paid": _on_invoice_paid,
    "invoice.payment_failed": _on_invoice_payment_failed,
}

HANDLED_EVENT_TYPES = sorted({*HANDLERS, "invoice.payment_succeeded"})


def process_event(event: StripeDict, gateway: StripeGateway) -> Outcome:
    """Record and apply one verified event; raise (after recording the failure) if apply fails."""
    try:
        outcome = _record_and_apply(event, gateway)
        db.session.commit()
        return outcome
    except Exception as exc:
        _rollback_quietly()
        _record_failure(event, exc)
        raise


def _rollback_quietly() -> None:
    # With the database gone the rollback fails too; the server discards the transaction
    # anyway, and the original error is the one worth reporting.
    try:
        db.session.rollback()
    except Exception:
        log.warning("rollback failed", exc_info=True)


def _record_and_apply(event: StripeDict, gateway: StripeGateway) -> Outcome:
    event_id = str(event["id"])
    event_type = str(event.get("type") or "")
    _insert_event_row(event)
    row = db.session.execute(
        select(WebhookEvent)
        .where(WebhookEvent.id == event_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if row.processed:
        return Outcome(event_id, "duplicate")
    row.attempts += 1
    handler = HANDLERS.get(event_type)
    if handler is not None:
        data_object = (event.get("data") or {}).get("object") or {}
        handler(data_object, int(event.get("created") or 0), gateway)
    row.processed = True
    row.processed_at = utcnow()
    row.error = None
    return Outcome(event_id, "applied" if handler else "ignored")


def _insert_event_row(event: StripeDict) -> None:
    insert_or_ignore(
        WebhookEvent,
        {
            "id": str(event["id"]),
            "type": str(event.get("type") or ""),
            "data": event,
            "stripe_created": event.get("created"),
            "attempts": 0,
            "processed": False,
            "created_at": utcnow(),
        },
    )


def _record_failure(event: StripeDict, exc: Exception) -> None:
    """Outside the failed transaction: keep the event, its error and the attempt count."""
    message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
    log.exception("webhook %s (%s) failed", event.get("id"), event.get("type"))
    try:
        _insert_event_row(event)
        row = db.session.get(
            WebhookEvent, str(event["id"]), with_for_update=True, populate_existing=True
        )
        if row is not None and not row.processed:
            row.attempts += 1
            row.error = message
        db.session.commit()
    except Exception:  # the database itself may be what failed
        _rollback_quietly()
        log.error("could not record the failure of webhook %s", event.get("id"))
