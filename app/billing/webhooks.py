"""Webhook events: record and apply in one transaction, exactly once per event id.

verify (gateway) -> record (`webhook_events`: one INSERT, in the row's final shape, ON CONFLICT
DO NOTHING) -> apply (the handler for the type) -> commit. The insert both records the event and
claims it: a concurrent delivery of the same id waits on it (PostgreSQL) or queues behind the
write lock (SQLite), then finds it there. A repeated id that was already processed is
acknowledged and not applied again; one left unprocessed by a failed attempt is claimed by a
conditional UPDATE instead. A failing apply rolls back everything and leaves the failure
(error, attempts) on the event row for operators; the caller answers 5xx so Stripe retries.

An in-order subscription event costs two statements and the commit: this insert and the
guarded upsert of `subscription_store`; the owner's summary is settled only when the stored
state changed what it shows.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Text, bindparam, cast, update
from sqlalchemy.dialects.postgresql import JSONB

from app.billing.checkout import fulfil_checkout_session
from app.billing.pricing import mark_catalog_changed
from app.billing.stripe_objects import object_id
from app.billing.subscription_store import apply_subscription
from app.billing.times import now_ms
from app.billing.usage_periods import reset_usage_for_renewal
from app.database import (
    dialect_name,
    insert_for,
    retry_on_disconnect,
    rollback_quietly,
    unit_of_work,
)
from app.extensions import db
from app.models import WebhookEvent, utcnow
from app.observability import metrics
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
    apply_subscription(subscription, event_created=created, reread=gateway.reread_subscription)


def _on_invoice_paid(invoice: StripeDict, created: int, gateway: StripeGateway) -> None:
    reset_usage_for_renewal(invoice)


def _on_invoice_payment_failed(invoice: StripeDict, created: int, gateway: StripeGateway) -> None:
    # The subscription's own customer.subscription.updated (to past_due) carries the state;
    # this is for the operators' log, and costs no query.
    log.warning(
        "payment failed: invoice=%s customer=%s attempt=%s",
        invoice.get("id"),
        object_id(invoice.get("customer")),
        invoice.get("attempt_count"),
    )


def _on_catalog_changed(obj: StripeDict, created: int, gateway: StripeGateway) -> None:
    # The plans table (GET /api/plans) is re-read from Stripe on its next request.
    mark_catalog_changed(now_ms())


CATALOG_EVENT_TYPES = tuple(
    f"{kind}.{change}"
    for kind in ("price", "product")
    for change in ("created", "updated", "deleted")
)

# Each event type we subscribe to, its handler, and why we need it.
HANDLERS: dict[str, tuple[Handler, str]] = {
    "checkout.session.completed": (
        _on_checkout_completed,
        "links the buyer to their customer and subscription id (client_reference_id)",
    ),
    "customer.subscription.created": (
        _on_subscription_changed,
        "the subscription's first state (often incomplete, before payment)",
    ),
    "customer.subscription.updated": (
        _on_subscription_changed,
        "every state change: paid, past_due, cancel scheduled or undone, price, renewal period",
    ),
    "customer.subscription.deleted": (_on_subscription_changed, "the subscription ended"),
    "customer.subscription.paused": (_on_subscription_changed, "paid access stops while paused"),
    "customer.subscription.resumed": (_on_subscription_changed, "paid access is back"),
    "invoice.paid": (_on_invoice_paid, "a renewal was paid: usage starts again from 0"),
    "invoice.payment_failed": (
        _on_invoice_payment_failed,
        "logged for operators; the state comes with customer.subscription.updated",
    ),
    **dict.fromkeys(
        CATALOG_EVENT_TYPES,
        (_on_catalog_changed, "the plans table (GET /api/plans) is read from Stripe again"),
    ),
}

# invoice.payment_succeeded is not subscribed: invoice.paid (which also covers invoices paid
# out of band) is what renewals act on, and subscribing to both would only record duplicates.
HANDLED_EVENT_TYPES = sorted(HANDLERS)


def process_event(
    event: StripeDict, gateway: StripeGateway, raw_body: str | None = None
) -> Outcome:
    """Record and apply one verified event; raise (after recording the failure) if apply fails.

    `raw_body` is the event as Stripe sent it (stored as is); events we fetched ourselves (sync,
    replay) are serialised here. Each event gets one log line and its metrics."""
    raw = raw_body if raw_body is not None else json.dumps(event)
    started = time.perf_counter()

    def record_and_apply() -> Outcome:
        with unit_of_work():
            return _record_and_apply(event, raw, gateway)

    try:
        outcome = retry_on_disconnect(record_and_apply)
    except Exception as exc:
        _record_failure(event, raw, exc)
        _observe(event, "failed", started)
        raise
    _observe(event, outcome.status, started)
    return outcome


def _observe(event: StripeDict, outcome: str, started: float) -> None:
    """One log line and the metrics for each event: id, type, outcome, duration."""
    seconds = time.perf_counter() - started
    event_type = str(event.get("type") or "")
    metrics.observe_webhook(event_type, outcome, seconds)
    log.log(
        logging.WARNING if outcome == "failed" else logging.INFO,
        "webhook event",
        extra={
            "event_id": event.get("id"),
            "event_type": event_type,
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 2),
        },
    )


def _record_and_apply(event: StripeDict, raw: str, gateway: StripeGateway) -> Outcome:
    event_id = str(event["id"])
    handler, _reason = HANDLERS.get(str(event.get("type") or ""), (None, ""))
    if not _claim(event, raw):
        return Outcome(event_id, "duplicate")
    if handler is not None:
        data_object = (event.get("data") or {}).get("object") or {}
        handler(data_object, int(event.get("created") or 0), gateway)
    return Outcome(event_id, "applied" if handler else "ignored")


events = WebhookEvent.__table__


def _raw_json(dialect: str) -> Any:
    """The raw body into the JSON column without parsing and re-serialising it."""
    raw = bindparam("raw", type_=Text)
    return cast(raw, JSONB) if dialect == "postgresql" else raw


@functools.cache
def _record_statement(dialect: str, claim: bool) -> Any:
    """Insert the event row: as processed (`claim`, one statement that records and claims a
    new event) or as failed. Built once per process."""
    statement = insert_for(dialect, events).values(
        id=bindparam("id"),
        type=bindparam("type"),
        data=_raw_json(dialect),
        stripe_created=bindparam("stripe_created", type_=BigInteger),
        processed=claim,
        processed_at=bindparam("now") if claim else None,
        attempts=1,
        error=None if claim else bindparam("error"),
        created_at=bindparam("now"),
    )
    if claim:
        return statement.on_conflict_do_nothing().returning(events.c.id)
    return statement.on_conflict_do_update(
        index_elements=[events.c.id],
        set_={"attempts": events.c.attempts + 1, "error": statement.excluded.error},
        where=events.c.processed.is_(False),
    )


@functools.cache
def _retry_claim_statement() -> Any:
    """Claim an event a failed attempt left unprocessed (waits for a concurrent claim)."""
    return (
        update(events)
        .where(events.c.id == bindparam("event_id"), events.c.processed.is_(False))
        .values(
            processed=True,
            processed_at=bindparam("now"),
            attempts=events.c.attempts + 1,
            error=None,
        )
        .returning(events.c.id)
    )


def _params(event: StripeDict, raw: str) -> dict[str, Any]:
    return {
        "id": str(event["id"]),
        "type": str(event.get("type") or ""),
        "raw": raw,
        "stripe_created": event.get("created"),
        "now": utcnow(),
    }


def _claim(event: StripeDict, raw: str) -> bool:
    """Record the event as processed (rolled back with the apply if that fails); False when a
    processed copy is already there. One INSERT for a new id; an id a failed attempt left
    unprocessed is claimed by a conditional UPDATE."""
    params = _params(event, raw)
    claim = _record_statement(dialect_name(), True)
    if db.session.execute(claim, params).first() is not None:
        return True
    retry = {"event_id": params["id"], "now": params["now"]}
    return db.session.execute(_retry_claim_statement(), retry).first() is not None


def _record_failure(event: StripeDict, raw: str, exc: Exception) -> None:
    """Outside the failed transaction: keep the event, its error and the attempt count."""
    message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
    log.exception("webhook %s (%s) failed", event.get("id"), event.get("type"))
    rollback_quietly()
    try:
        with unit_of_work():
            statement = _record_statement(dialect_name(), False)
            db.session.execute(statement, {**_params(event, raw), "error": message})
    except Exception:  # the database itself may be what failed
        log.error("could not record the failure of webhook %s", event.get("id"))
