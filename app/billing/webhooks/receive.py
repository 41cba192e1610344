"""Webhook events: record and apply in one transaction, exactly once per event id.

verify (gateway) -> record (`webhook_events`: one INSERT, in the row's final shape, ON CONFLICT
DO NOTHING) -> apply (the handler for the type) -> commit. The insert both records the event and
claims it: a concurrent delivery of the same id waits on it (PostgreSQL) or queues behind the
write lock (SQLite), then finds it there. A repeated id that was already processed is
acknowledged and not applied again; one left unprocessed by a failed attempt is claimed by a
conditional UPDATE instead. A failing apply rolls back everything and leaves the failure
(error, attempts) on the event row for operators; the caller answers 5xx so Stripe retries.

An in-order subscription event costs this insert and the guarded upsert of `subscription_store`
(on PostgreSQL one statement: `webhook_sql.record_and_store_statement`) and the commit; the
owner's summary is settled only when the stored state changed what it shows.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from app import audit
from app.billing.plans import mark_catalog_changed
from app.billing.subscriptions.checkout import fulfil_checkout_session
from app.billing.subscriptions.store import (
    apply_subscription,
    finish_applying,
    store_params,
    stored_from,
)
from app.billing.time import now_ms
from app.billing.usage.periods import reset_usage_for_renewal
from app.billing.webhooks.store import (
    STORE_PREFIX,
    record_and_store_statement,
    record_statement,
    retry_claim_statement,
)
from app.db import (
    dialect_name,
    execute_prebuilt,
    retry_on_disconnect,
    rollback_quietly,
    unit_of_work,
)
from app.extensions import db
from app.models import utcnow
from app.observability import metrics
from app.safe_text import db_safe, for_log, has_unsafe_chars
from app.stripe.gateway import StripeDict, StripeGateway
from app.stripe.objects import object_id

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
    "checkout.session.expired": (
        _on_checkout_expired,
        "audit log only: whose checkout session lapsed",
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
    """Record and apply one verified event; raise (after recording the failure) if apply fails,
    `MalformedEvent` when its shape can never be applied.

    `raw_body` is the event as Stripe sent it (stored as is); events we fetched ourselves (sync,
    replay) are serialised here. Each event gets one log line and its metrics."""
    started = time.perf_counter()
    raw = raw_body if raw_body is not None else json.dumps(event)
    problem = malformed(event)
    if problem is not None:
        exc = MalformedEvent(f"malformed event: {problem}")
        _record_failure(event, raw, exc)
        _observe(event, "malformed", started)
        raise exc

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
    event_type = event.get("type")
    if not isinstance(event_type, str) or len(event_type) > 100:
        event_type = ""  # a malformed event's type is no label (nor a log line) to keep
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


class Claim(Enum):
    """What recording an event found, and whether its audit entry is written already."""

    NEW = "new"  # recorded now; its entry is still to be written
    NEW_AUDITED = "new, audited"  # recorded now with its entry (PostgreSQL, one statement)
    DUPLICATE = "duplicate"  # processed before; its entry is still to be written
    DUPLICATE_AUDITED = "duplicate, audited"

    @property
    def is_new(self) -> bool:
        return self in (Claim.NEW, Claim.NEW_AUDITED)


def _record_and_apply(event: StripeDict, raw: str, gateway: StripeGateway) -> Outcome:
    event_id = str(event["id"])
    event_type = str(event.get("type") or "")
    handler, _reason = HANDLERS.get(event_type, (None, ""))
    status = "applied" if handler else "ignored"
    data_object = (event.get("data") or {}).get("object") or {}
    if handler is _on_subscription_changed and dialect_name() == "postgresql":
        claim = _claim_and_apply_subscription(event, raw, data_object, gateway)
    else:
        claim = _claim(event, raw, status)
        if claim.is_new and handler is not None:
            handler(data_object, int(event.get("created") or 0), gateway)
    outcome = status if claim.is_new else "duplicate"
    if claim in (Claim.NEW, Claim.DUPLICATE):
        # In the event's own transaction: recorded if and only if the event is (a duplicate's
        # in the transaction that found it processed: one entry, no second commit).
        audit.record(
            f"webhook.{outcome}", "ok", stripe_object=event_id, detail=event_type, for_request=True
        )
    else:  # written by the recording statement itself: see `webhook_sql.record_statement`
        audit.mark_written()
    return Outcome(event_id, outcome)


def _claim_and_apply_subscription(
    event: StripeDict, raw: str, subscription: StripeDict, gateway: StripeGateway
) -> Claim:
    """PostgreSQL, a subscription event: record it, audit it and upsert its subscription in one
    statement, then finish the apply (the owner's summary, a re-read when undecided). An id
    that is already there is claimed, or found processed, as `_claim` does. Same answers."""
    created = int(event.get("created") or 0)
    params = _claim_params(event, raw, "applied")
    params.update(store_params(subscription, created, prefix=STORE_PREFIX))
    row = execute_prebuilt(record_and_store_statement(), params).one()
    claim = _claimed(row[0], row[1], params)
    if claim is Claim.NEW_AUDITED:
        stored = stored_from(row[2:])
        finish_applying(stored, subscription, created, gateway.reread_subscription)
    elif claim is Claim.NEW:
        _on_subscription_changed(subscription, created, gateway)
    return claim


# A JSON text escape the database can't take: \u0000 (PostgreSQL's JSONB refuses it) or a
# UTF-16 surrogate (psycopg can't encode a lone one). Checked before walking the event.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _storable(event: StripeDict, raw: str) -> tuple[str, str | None]:
    """The text for the `data` column, and for `raw_body`. The body as Stripe sent it is kept
    once: in `data` (JSON, as is) when the database can hold it, the common case; otherwise
    `data` has the offending strings replaced and the body as received goes to `raw_body`."""
    if _SUSPECT_ESCAPE.search(raw) is None:
        return raw, None
    data = db_safe(event)
    if data == event:
        return raw, None
    return json.dumps(data), str(db_safe(raw))


def _event_key(event: StripeDict) -> str:
    return str(db_safe(str(event.get("id") or "")))[:255] or "(no id)"


def _params(event: StripeDict, raw: str) -> dict[str, Any]:
    data, raw_body = _storable(event, raw)
    created = event.get("created")
    return {
        "id": _event_key(event),
        "type": str(db_safe(str(event.get("type") or "")))[:100],
        "raw": data,
        "raw_body": raw_body,
        "stripe_created": created
        if isinstance(created, int) and not isinstance(created, bool)
        else None,
        "now": utcnow(),
    }


def _claim_params(event: StripeDict, raw: str, status: str) -> dict[str, Any]:
    """The event row's parameters (and, on PostgreSQL, its audit entry's)."""
    params = _params(event, raw)
    if dialect_name() == "postgresql":
        entry = audit.entry_values(
            f"webhook.{status}", "ok", stripe_object=params["id"], detail=params["type"]
        )
        params.update({f"audit_{name}": value for name, value in entry.items()})
    return params


def _claim(event: StripeDict, raw: str, status: str) -> Claim:
    """Record the event as processed (rolled back with the apply if that fails), or find it
    processed already. One INSERT for a new id (on PostgreSQL it writes the audit entry too,
    a redelivery's included); an id a failed attempt left unprocessed is claimed by a
    conditional UPDATE."""
    params = _claim_params(event, raw, status)
    dialect = dialect_name()
    if dialect == "postgresql":
        row = execute_prebuilt(record_statement(dialect, True), params).one()
        return _claimed(row[0], row[1], params)
    inserted = execute_prebuilt(record_statement(dialect, True), params).first()
    return Claim.NEW if inserted is not None else _retry_claim(params)


def _claimed(event_id: str | None, duplicate_audited: bool, params: dict[str, Any]) -> Claim:
    """PostgreSQL's recording statement's answer: inserted (with its entry), a duplicate it
    saw processed (with its entry), or neither: the id is there, to be claimed or found."""
    if event_id is not None:
        return Claim.NEW_AUDITED
    if duplicate_audited:
        return Claim.DUPLICATE_AUDITED
    return _retry_claim(params)


def _retry_claim(params: dict[str, Any]) -> Claim:
    """The event is there already: claim it if a failed attempt left it unprocessed (its entry
    still to be written), or find it processed."""
    retry = {"event_id": params["id"], "now": params["now"]}
    if db.session.execute(retry_claim_statement(), retry).first() is not None:
        return Claim.NEW
    return Claim.DUPLICATE


def _record_failure(event: StripeDict, raw: str, exc: Exception) -> None:
    """Outside the failed transaction: keep the event, its error and the attempt count (and,
    for an event that can never be applied, the body as received in `raw_body`)."""
    message = str(db_safe(f"{type(exc).__name__}: {exc}"))[:MAX_ERROR_LENGTH]
    if isinstance(exc, MalformedEvent):
        log.error("webhook %s rejected: %s", for_log(event.get("id")), for_log(exc))
    else:
        log.exception(
            "webhook %s (%s) failed", for_log(event.get("id")), for_log(event.get("type"))
        )
    rollback_quietly()
    params = {**_params(event, raw), "error": message}
    if isinstance(exc, MalformedEvent):
        params["raw_body"] = str(db_safe(raw))
    try:
        with unit_of_work():
            db.session.execute(record_statement(dialect_name(), False), params)
    except Exception:  # the database itself may be what failed
        log.error("could not record the failure of webhook %s", for_log(event.get("id")))
