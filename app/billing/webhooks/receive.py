"""Receiving Stripe's webhook events: verify -> record durably -> acknowledge. Applying them is
the applier's (`applier.py`), after the acknowledgement.

`receive` is what the route calls: the signature is checked over the raw body, the event read
and checked for the few fields we rely on, and the event handed to the process's inbox, which
answers once a commit holds it (`inbox.py`: one INSERT and one commit for all the deliveries in
flight). No 2xx before that commit: a crash before it means Stripe delivers again. A signed
event we can never apply as it is (a leaked secret, a bug, a hand-made replay) is kept, parked,
and answered 400 `malformed_event`: never a 500 loop.

`record_and_apply` is the same path for events we fetched ourselves (`flask billing sync
--events`): recorded, then applied at once in this process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from flask import current_app, request

from app import audit, json_text
from app.billing.errors import InvalidRequest
from app.billing.webhooks import store
from app.billing.webhooks.applier import Applier, Settings, apply_now
from app.billing.webhooks.handlers import HANDLERS
from app.billing.webhooks.inbox import Inbox
from app.billing.webhooks.store import Recorded
from app.db import retry_on_disconnect, rollback_quietly, unit_of_work
from app.db_writer import StatementWriter
from app.models import utcnow
from app.observability.request_id import current_request_id
from app.safe_text import db_safe, for_log, has_unsafe_chars
from app.stripe.gateway import InvalidSignature, StripeDict, StripeGateway, current_gateway
from app.stripe.signatures import plainly_signed_text

log = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 2000
# A `created` after the year 3000 is no Stripe time (and would overflow the column).
MAX_CREATED = 32_503_680_000


class BadSignature(InvalidRequest):
    code = "invalid_signature"


class MalformedEvent(InvalidRequest):
    """A signed event we can never apply as it is (kept, parked, for operators)."""

    code = "malformed_event"


@dataclass(frozen=True)
class Receipt:
    event_id: str
    event_type: str
    status: str  # "recorded" (new) or "duplicate" (we had it already)

    @classmethod
    def of(cls, event: Recorded, new: bool) -> Receipt:
        return cls(event.id, event.type, "recorded" if new else "duplicate")


def receive(payload: bytes, signature: str | None) -> Receipt:
    """Verify, check and record one delivery (see the module's docstring)."""
    config = current_app.config
    try:
        text = current_gateway().verify_webhook(
            payload,
            signature,
            secret=config["STRIPE_WEBHOOK_SECRET"],
            tolerance=config["STRIPE_WEBHOOK_TOLERANCE"],
        )
    except InvalidSignature as exc:
        raise BadSignature("Webhook signature verification failed.") from exc
    event = _parsed(text)
    recorded = _recorded(event, text, request.remote_addr, current_request_id())
    problem = malformed(event)
    if problem is not None:
        _park(recorded, f"MalformedEvent: malformed event: {problem}")
        raise MalformedEvent("Event can't be applied.")
    return record(recorded)


def accepted(
    payload: bytes,
    signature: str,
    config: Mapping[str, Any],
    *,
    sender_ip: str | None,
    request_id: str,
) -> Recorded | None:
    """The event of a delivery with nothing unusual about it (plainly signed, readable JSON,
    nothing malformed), ready for `record`; None for anything else, which `receive` then
    refuses or records with the reply it deserves. No context needed, nothing written: the
    webhook fast path's check (app/api/webhook_fast_path.py)."""
    text = plainly_signed_text(
        payload,
        signature,
        secret=config["STRIPE_WEBHOOK_SECRET"],
        tolerance=config["STRIPE_WEBHOOK_TOLERANCE"],
    )
    if text is None:
        return None
    try:
        event = json_text.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(event, dict) or malformed(event) is not None:
        return None
    return _recorded(event, text, sender_ip, request_id)


def record(recorded: Recorded) -> Receipt:
    """Hand a verified and checked event to the process's inbox; answers once a commit holds
    it. Raises what the write raised (the route answers 503: nothing acknowledged)."""
    audit.note(stripe_object=recorded.id, detail=recorded.type)
    new = retry_on_disconnect(lambda: _inbox().record(recorded, _write_batch))
    _applier().nudge()
    return Receipt.of(recorded, new)


def record_batch(batch: Sequence[Recorded]) -> set[str]:
    """Write a batch of checked events gathered by the caller (the asyncio server's inbox,
    app/asgi.py), as the inbox writes its own: the ids inserted; in an app context. Raises
    what the write raised (nothing acknowledged)."""
    inserted = retry_on_disconnect(lambda: _write_batch(batch))
    _applier().nudge()
    return inserted


def _parsed(text: str) -> StripeDict:
    try:
        event = json_text.loads(text)
    except (ValueError, RecursionError) as exc:  # signed, but no JSON we can read
        event = {"id": _unreadable_id(text), "type": "", "data": None}
        unreadable = replace(_recorded(event, json.dumps(event)), raw_body=str(db_safe(text)))
        _park(unreadable, f"MalformedEvent: unreadable JSON ({type(exc).__name__})")
        raise MalformedEvent("Event can't be applied.") from exc
    if not isinstance(event, dict):
        raise MalformedEvent("Event can't be applied.")
    return event


def _unreadable_id(text: str) -> str:
    return "unreadable_" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _write_batch(batch: Sequence[Recorded]) -> set[str]:
    """The inbox's write: the events in one statement and, for redeliveries, their audit
    entries in another (on PostgreSQL each durable when it returns, on the process's own
    connection: app/db_writer.py `StatementWriter`; on SQLite one transaction). Should the entries
    fail, every delivery of the batch answers 503 and Stripe sends them again: the new events
    are duplicates then, nothing is applied twice."""
    writer: StatementWriter = current_app.extensions["webhook_writer"]
    with writer.durable():
        inserted = store.record_events(batch, writer)
        store.write_audit_entries(
            [
                audit.entry_values(
                    "webhook.duplicate",
                    "ok",
                    stripe_object=event.id,
                    detail=event.type,
                    ip=event.sender_ip,
                    request_id=event.request_id,
                )
                for event in batch
                if event.id not in inserted
            ],
            writer,
        )
    return inserted


def _park(event: Recorded, error: str) -> None:
    """Keep an event we can't apply, with the body as received, out of the applier's way."""
    log.error("webhook %s rejected: %s", for_log(event.id), for_log(error))
    event = replace(event, raw_body=event.raw_body or event.data)
    rollback_quietly()
    try:
        with unit_of_work():
            store.record_rejected(event, str(db_safe(error))[:MAX_ERROR_LENGTH], utcnow())
    except Exception:  # the database itself may be what failed: the 400 stands
        log.error("could not record the malformed webhook %s", for_log(event.id))


def _inbox() -> Inbox:
    inbox: Inbox = current_app.extensions["webhook_inbox"]
    return inbox


def _applier() -> Applier:
    applier: Applier = current_app.extensions["webhook_applier"]
    if current_app.config["WEBHOOK_APPLIER"] == "thread":
        applier.start()
    return applier


def install(app: Any) -> None:
    """The process's inbox and applier (the applier thread starts with the first delivery, or
    with the worker in production: gunicorn.conf.py)."""
    app.extensions["webhook_inbox"] = Inbox(max_batch=app.config["WEBHOOK_INGEST_MAX_BATCH"])
    app.extensions["webhook_writer"] = StatementWriter()
    app.extensions["webhook_applier"] = Applier(app, app.config["WEBHOOK_APPLY_POLL_SECONDS"])


def record_and_apply(event: StripeDict, gateway: StripeGateway) -> str:
    """An event we fetched ourselves: recorded (raw body = its JSON) and applied now.
    "duplicate" when it was processed before, else "applied" or "ignored"; raises when the
    apply failed (the event stays recorded, to be retried)."""
    recorded = _recorded(event, json.dumps(event))
    problem = malformed(event)
    if problem is not None:
        _park(recorded, f"MalformedEvent: malformed event: {problem}")
        raise MalformedEvent(f"malformed event: {problem}")
    if not _write_batch([recorded]) and is_processed(recorded.id):
        return "duplicate"
    apply_now([recorded.id], gateway, Settings.from_config(current_app.config))
    if not is_processed(recorded.id):
        with unit_of_work():
            state = store.event_state(recorded.id)
        raise RuntimeError(f"event {recorded.id} was not applied: {state.error if state else ''}")
    return "applied" if recorded.type in HANDLERS else "ignored"


def is_processed(event_id: str) -> bool:
    with unit_of_work():
        state = store.event_state(event_id)
    return bool(state is not None and state.processed)


# -- what we rely on in an event ---------------------------------------------------------------

# A JSON text escape the database can't take: \u0000 (its NUL is refused by PostgreSQL's text
# columns once the applier decodes it) or a UTF-16 surrogate (psycopg can't encode a lone one).
# Checked before walking the event.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _recorded(
    event: StripeDict, text: str, sender_ip: str | None = None, request_id: str | None = None
) -> Recorded:
    """The event's row: the body as Stripe sent it is kept once, in `data` (JSON, as is) when
    the database can hold it, the common case; otherwise `data` has the offending strings
    replaced and the body as received goes to `raw_body`."""
    data, raw_body = text, None
    if _SUSPECT_ESCAPE.search(text) is not None:
        safe = db_safe(event)
        if safe != event:
            data, raw_body = json.dumps(safe), str(db_safe(text))
    created = event.get("created")
    return Recorded(
        id=str(db_safe(str(event.get("id") or "")))[:255] or "(no id)",
        type=str(db_safe(str(event.get("type") or "")))[:100],
        data=data,
        raw_body=raw_body,
        stripe_created=created if _is_time(created) else None,
        received_at=utcnow(),
        sender_ip=sender_ip,
        request_id=request_id,
    )


def _is_time(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_CREATED


# Fields of the handled objects that end up as ids in our tables.
_ID_FIELDS = ("id", "customer", "subscription", "client_reference_id")


def malformed(event: StripeDict) -> str | None:
    """Why a signed event can't be applied as it is, or None. Stripe never sends these."""
    if not _is_safe_id(event.get("id")):
        return "id is not a usable string"
    event_type = event.get("type")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 100:
        return "type is not a string"
    if not _is_time(event.get("created")):
        return "created is not a timestamp"
    data = event.get("data")
    data_object = data.get("object") if isinstance(data, dict) else None
    if not isinstance(data_object, dict):
        return "data.object is not an object"
    if event_type not in HANDLERS:
        return None
    return _malformed_object(data_object)


def _malformed_object(data_object: StripeDict) -> str | None:
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
    status = data_object.get("status")
    if status is not None and not (isinstance(status, str) and len(status) <= 50):
        return "data.object.status is not a status"
    for name in _TIME_FIELDS:
        value = data_object.get(name)
        if value is not None and not _is_time(value):
            return f"data.object.{name} is not a timestamp"
    return _malformed_items(data_object.get("items"))


# Times we store from the handled objects (whole seconds; absent or null when not set).
_TIME_FIELDS = (
    "created",
    "cancel_at",
    "canceled_at",
    "ended_at",
    "trial_start",
    "trial_end",
    "current_period_start",
    "current_period_end",
)


def _malformed_items(items: Any) -> str | None:
    """A subscription's items as we read them: a list object of item objects, each with a
    price object (or id) and whole-second times."""
    if items is None:
        return None
    if not isinstance(items, dict) or not isinstance(items.get("data", []), list):
        return "data.object.items is not a list object"
    for item in items.get("data", []):
        if not isinstance(item, dict):
            return "data.object.items.data holds a non-object"
        price = item.get("price")
        if price is not None and not isinstance(price, dict | str):
            return "data.object.items.data[].price is not an object"
        if isinstance(price, dict) and not isinstance(price.get("recurring") or {}, dict):
            return "data.object.items.data[].price.recurring is not an object"
        for name in ("current_period_start", "current_period_end"):
            value = item.get(name)
            if value is not None and not _is_time(value):
                return f"data.object.items.data[].{name} is not a timestamp"
    return None


def _is_safe_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 255 and not has_unsafe_chars(value)
