"""Webhook events: record and apply in one transaction, exactly once per event id.

verify (gateway) -> record (`webhook_events`, ON CONFLICT DO NOTHING + row lock) -> apply
(handler for the type) -> commit. A repeated id that was already processed is acknowledged and
not applied again. A failing apply rolls back everything and leaves the failure (error,
attempts) on the event row for operators; the caller answers 5xx so Stripe retries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from app import audit
from app.billing.checkout import fulfil_checkout_session
from app.billing.stripe_objects import object_id
from app.billing.subscriptions import apply_subscription
from app.billing.usage_periods import reset_usage_for_renewal
from app.billing.users import user_by_customer
from app.database import insert_or_ignore
from app.extensions import db
from app.models import WebhookEvent, utcnow
from app.safe_text import db_safe, for_log, has_unsafe_chars
from app.stripe_gateway import StripeDict, StripeGateway

log = logging.getLogger(__name__)

Handler = Callable[[StripeDict, int, StripeGateway], None]

MAX_ERROR_LENGTH = 2000


class MalformedEvent(Exception):
    """A signed event we can never apply as it is (recorded as failed for operators)."""


@dataclass(frozen=True)
class Outcome:
    event_id: str
    status: str  # "applied", "duplicate" or "ignored" (a type we record but don't act on)


def _on_checkout_completed(session: StripeDict, created: int, gateway: StripeGateway) -> None:
    if session.get("mode") == "subscription":
        fulfil_checkout_session(session)


def _on_checkout_expired(session: StripeDict, created: int, gateway: StripeGateway) -> None:
    # Nothing to change in our tables; who let which session lapse goes to the audit log.
    owner = session.get("client_reference_id")
    audit.record(
        "checkout.expired",
        "ok",
        user_id=owner if isinstance(owner, str) else None,
        stripe_object=str(session.get("id")),
    )


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
    "checkout.session.expired": _on_checkout_expired,
    "customer.subscription.created": _on_subscription_changed,
    "customer.subscription.updated": _on_subscription_changed,
    "customer.subscription.deleted": _on_subscription_changed,
    "customer.subscription.paused": _on_subscription_changed,
    "customer.subscription.resumed": _on_subscription_changed,
    "invoice.paid": _on_invoice_paid,
    "invoice.payment_failed": _on_invoice_payment_failed,
}

HANDLED_EVENT_TYPES = sorted({*HANDLERS, "invoice.payment_succeeded"})


def process_event(
    event: StripeDict, gateway: StripeGateway, *, raw_body: str | None = None
) -> Outcome:
    """Record and apply one verified event; raise (after recording the failure) if apply fails,
    `MalformedEvent` when its shape can never be applied."""
    problem = malformed(event)
    if problem is not None:
        exc = MalformedEvent(f"malformed event: {problem}")
        _record_failure(event, exc, raw_body=raw_body)
        raise exc
    try:
        outcome = _record_and_apply(event, gateway, raw_body)
        db.session.commit()
        return outcome
    except Exception as exc:
        _rollback_quietly()
        _record_failure(event, exc, raw_body=raw_body)
        raise


# Fields of the handled objects that end up as ids in our tables.
_ID_FIELDS = ("id", "customer", "subscription", "client_reference_id")


def malformed(event: StripeDict) -> str | None:
    """Why a signed event can't be applied as it is, or None. Stripe never sends these, but a
    leaked secret, a bug or a hand-made replay can: they must fail visibly, not as a 500 loop."""
    if not _is_safe_id(event.get("id")):
        return "id is not a usable string"
    event_type = event.get("type")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 100:
        return "type is not a string"
    created = event.get("created")
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        return "created is not a timestamp"
    data = event.get("data")
    data_object = data.get("object") if isinstance(data, dict) else None
    if not isinstance(data_object, dict):
        return "data.object is not an object"
    if event_type not in HANDLERS:
        return None
    if not _is_safe_id(data_object.get("id")):
        return "data.object.id is missing or not a usable string"
    for name in _ID_FIELDS[1:]:
        value = data_object.get(name)
        if isinstance(value, dict):
            value = value.get("id")
        if value is not None and not _is_safe_id(value):
            return f"data.object.{name} is not a usable id"
    metadata = data_object.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return "data.object.metadata is not an object"
    user_id = (metadata or {}).get("userId")
    if user_id is not None and not _is_safe_id(user_id):
        return "data.object.metadata.userId is not a usable id"
    return None


def _is_safe_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 255 and not has_unsafe_chars(value)


def _rollback_quietly() -> None:
    # With the database gone the rollback fails too; the server discards the transaction
    # anyway, and the original error is the one worth reporting.
    try:
        db.session.rollback()
    except Exception:
        log.warning("rollback failed", exc_info=True)


def _record_and_apply(event: StripeDict, gateway: StripeGateway, raw_body: str | None) -> Outcome:
    event_id = str(event["id"])
    event_type = str(event.get("type") or "")
    _insert_event_row(event, raw_body)
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
    outcome = Outcome(event_id, "applied" if handler else "ignored")
    # In the event's own transaction: recorded if and only if the event is.
    audit.record(
        f"webhook.{outcome.status}",
        "ok",
        stripe_object=event_id,
        detail=event_type,
        for_request=True,
    )
    return outcome


def _event_key(event: StripeDict) -> str:
    return str(db_safe(str(event.get("id") or "")))[:255] or "(no id)"


def _insert_event_row(
    event: StripeDict, raw_body: str | None = None, *, keep_raw: bool = False
) -> None:
    """Stored in a form the database always accepts: PostgreSQL's JSONB refuses `\u0000` and
    psycopg can't encode lone surrogates, so such strings are replaced in `data` and the body
    as received is kept in `raw_body` (as text, with the JSON escapes Stripe sent)."""
    data = db_safe(event)
    created = event.get("created")
    needs_raw = keep_raw or data != event
    insert_or_ignore(
        WebhookEvent,
        {
            "id": _event_key(event),
            "type": str(db_safe(str(event.get("type") or "")))[:100],
            "data": data,
            "stripe_created": created
            if isinstance(created, int) and not isinstance(created, bool)
            else None,
            "attempts": 0,
            "processed": False,
            "raw_body": _storable_raw(raw_body, data) if needs_raw else None,
            "created_at": utcnow(),
        },
    )


def _storable_raw(raw_body: str | None, data: object) -> str:
    if raw_body is None:
        return json.dumps(data)
    return str(db_safe(raw_body))


def _record_failure(event: StripeDict, exc: Exception, *, raw_body: str | None = None) -> None:
    """Outside the failed transaction: keep the event, its error and the attempt count."""
    message = str(db_safe(f"{type(exc).__name__}: {exc}"))[:MAX_ERROR_LENGTH]
    if isinstance(exc, MalformedEvent):
        log.error("webhook %s rejected: %s", for_log(event.get("id")), for_log(exc))
    else:
        log.exception(
            "webhook %s (%s) failed", for_log(event.get("id")), for_log(event.get("type"))
        )
    try:
        _insert_event_row(event, raw_body, keep_raw=True)
        row = db.session.get(
            WebhookEvent, _event_key(event), with_for_update=True, populate_existing=True
        )
        if row is not None and not row.processed:
            row.attempts += 1
            row.error = message
            if row.raw_body is None and raw_body is not None:
                row.raw_body = _storable_raw(raw_body, row.data)
        db.session.commit()
    except Exception:  # the database itself may be what failed
        _rollback_quietly()
        log.error("could not record the failure of webhook %s", for_log(event.get("id")))
