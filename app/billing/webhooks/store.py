"""The webhook inbox's SQL: `webhook_events` holds every event we acknowledged.

An event row is recorded once (its id is the key: a redelivery finds it there), then applied by
the applier and marked processed in the same transaction as its effects. A row is, by its
columns:

- pending: not processed, not parked (`next_attempt_at`, when set, defers a retry);
- processed: applied (or recorded only: a type we don't act on);
- parked: not processed, `parked_at` set: it can't be applied as it is (malformed, or it kept
  failing); `flask billing events --failed` shows it, `flask billing replay` retries it.

The same statements run on SQLite and PostgreSQL (SQLite ignores `FOR UPDATE SKIP LOCKED`: its
writers queue on the database lock, so two appliers never hold the same rows either).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Text, func, insert, or_, select, text, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from app.billing.webhooks.backlog import waiting
from app.db import dialect_name, upsert
from app.db_writer import StatementWriter
from app.extensions import db
from app.models import AuditEntry, WebhookEvent

events = WebhookEvent.__table__


class JsonText(ColumnElement[Any]):
    """A JSON document already in text form, stored as it is (no parse and re-serialise in
    Python): PostgreSQL casts it to JSON (its syntax checked, the text kept), SQLite keeps the text
    its JSON column holds."""

    inherit_cache = True

    def __init__(self, value: str) -> None:
        self.value = BindParameter(None, value, type_=Text, unique=True)
        self.type = Text()


@compiles(JsonText)
def _json_text(element: JsonText, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.value, **kw))


@compiles(JsonText, "postgresql")
def _json_text_postgresql(element: JsonText, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.value, **kw)} AS JSON)"


@dataclass(frozen=True)
class Recorded:
    """An event as the inbox records it."""

    id: str
    type: str
    data: str  # the JSON text for `data` (the body as Stripe sent it, when storable)
    raw_body: str | None  # the body as received, when `data` had to be made storable
    stripe_created: int | None
    received_at: datetime
    # Who delivered it (not stored with the event): a redelivery's audit entry names its own
    # request, whichever delivery's thread writes the batch.
    sender_ip: str | None = None
    request_id: str | None = None


# PostgreSQL: the whole batch in one statement whose text never changes (one array per column,
# unnested), so psycopg prepares it once per connection and each batch only binds six arrays.
# A VALUES list per batch size was compiled by SQLAlchemy and planned by PostgreSQL anew for
# every batch size: most of the ingest's CPU under load (bench/peer.py, docs/performance.md).
_RECORD_POSTGRESQL = (
    "INSERT INTO webhook_events (id, type, data, raw_body, stripe_created, processed, attempts,"
    " created_at) SELECT e.id, e.type, CAST(e.data AS JSON), e.raw_body, e.created, false, 0,"
    " e.received FROM unnest(%(ids)b::varchar[], %(types)b::varchar[], %(data)b::text[],"
    " %(raw)b::text[], %(created)b::bigint[], %(received)b::timestamptz[])"
    " AS e(id, type, data, raw_body, created, received)"
    " ON CONFLICT (id) DO NOTHING RETURNING id"
)

# One event: the same insert with plain values. Binding six one-element arrays cost psycopg
# more than the round trip (finding each list's element type and dumper anew: about a third
# of a lone delivery's CPU on the webhook fast path, docs/performance.md "fastpath").
_RECORD_ONE_POSTGRESQL = (
    "INSERT INTO webhook_events (id, type, data, raw_body, stripe_created, processed, attempts,"
    " created_at) VALUES (%(id)b::varchar, %(type)b::varchar, CAST(%(data)b::text AS JSON),"
    " %(raw)b::text, %(created)b::bigint, false, 0, %(received)b::timestamptz)"
    " ON CONFLICT (id) DO NOTHING RETURNING id"
)


def record_events(batch: Sequence[Recorded], writer: StatementWriter | None = None) -> set[str]:
    """Insert the events that are not there yet; the ids this statement inserted. On
    PostgreSQL through `writer` when given (durable when it returns), else in the session's
    transaction."""
    if dialect_name() == "postgresql":
        if len(batch) == 1 and writer is not None:  # most batches when the load is low
            (event,) = batch
            one = {
                "id": event.id,
                "type": event.type,
                "data": event.data,
                "raw": event.raw_body,
                "created": event.stripe_created,
                "received": event.received_at,
            }
            return {row[0] for row in writer.execute(_RECORD_ONE_POSTGRESQL, one)}
        params = {
            "ids": [event.id for event in batch],
            "types": [event.type for event in batch],
            "data": [event.data for event in batch],
            "raw": [event.raw_body for event in batch],
            "created": [event.stripe_created for event in batch],
            "received": [event.received_at for event in batch],
        }
        if writer is not None:
            return {row[0] for row in writer.execute(_RECORD_POSTGRESQL, params)}
        return set(db.session.connection().exec_driver_sql(_RECORD_POSTGRESQL, params).scalars())
    rows = [
        {
            "id": event.id,
            "type": event.type,
            "data": JsonText(event.data),
            "raw_body": event.raw_body,
            "stripe_created": event.stripe_created,
            "processed": False,
            "attempts": 0,
            "created_at": event.received_at,
        }
        for event in batch
    ]
    statement = upsert(WebhookEvent).values(rows).on_conflict_do_nothing()
    return set(db.session.execute(statement.returning(events.c.id)).scalars())


def record_rejected(event: Recorded, error: str, now: datetime) -> None:
    """An event that can never be applied as it is: kept, parked, with the body as received."""
    statement = upsert(WebhookEvent).values(
        id=event.id,
        type=event.type,
        data=JsonText(event.data),
        raw_body=event.raw_body,
        stripe_created=event.stripe_created,
        processed=False,
        attempts=1,
        error=error,
        parked_at=now,
        created_at=event.received_at,
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[events.c.id],
            set_={
                "attempts": events.c.attempts + 1,
                "error": statement.excluded.error,
                "parked_at": statement.excluded.parked_at,
                "raw_body": func.coalesce(events.c.raw_body, statement.excluded.raw_body),
            },
            where=events.c.processed.is_(False),
        )
    )


READY_COLUMNS = (
    events.c.id,
    events.c.type,
    events.c.data,
    events.c.stripe_created,
    events.c.attempts,
    events.c.created_at,
)


def claim_ready(limit: int, now: datetime) -> Sequence[Any]:
    """Up to `limit` pending events that are due, oldest first (Stripe's `created`, then
    arrival), locked until the transaction ends; rows another applier holds are skipped.

    On PostgreSQL the claim walks the pending index in order (a plain index scan, never a
    bitmap scan): the index keeps an entry for every event applied since the last vacuum, and
    only a plain scan marks those dead as it passes, so that the next claim skips them. With
    the planner's choice, a bitmap scan and a sort, each claim visited them all again: 20 ms a
    claim after 80,000 events, most of a core for four appliers (docs/performance.md)."""
    statement = (
        select(*READY_COLUMNS)
        .where(
            *waiting(),
            or_(events.c.next_attempt_at.is_(None), events.c.next_attempt_at <= now),
        )
        .order_by(events.c.stripe_created, events.c.created_at, events.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if dialect_name() != "postgresql":
        return db.session.execute(statement).all()
    db.session.execute(_NO_BITMAP_SCAN)  # undone with the transaction should the claim fail
    claimed = db.session.execute(statement).all()
    db.session.execute(_PLANNER_DEFAULTS)  # the batch's own statements plan as usual
    return claimed


_NO_BITMAP_SCAN = text("SET LOCAL enable_bitmapscan = off")
_PLANNER_DEFAULTS = text("RESET enable_bitmapscan")


def mark_processed(ids: Iterable[str], now: datetime) -> None:
    db.session.execute(
        update(events)
        .where(events.c.id.in_(list(ids)))
        .values(
            processed=True,
            processed_at=now,
            attempts=events.c.attempts + 1,
            error=None,
            next_attempt_at=None,
            parked_at=None,
        )
    )


def mark_failed(event_id: str, error: str, *, retry_at: datetime | None, now: datetime) -> None:
    """One failed attempt: retried at `retry_at`, or parked when that is None."""
    db.session.execute(
        update(events)
        .where(events.c.id == event_id)
        .values(
            attempts=events.c.attempts + 1,
            error=error,
            next_attempt_at=retry_at,
            parked_at=None if retry_at is not None else now,
        )
    )


# The audit entries of a batch's redeliveries, as the events are written (one array a column).
_AUDIT_POSTGRESQL = (
    "INSERT INTO audit_log (at, action, outcome, user_id, ip, request_id, stripe_object, detail)"
    " SELECT * FROM unnest(%(at)b::timestamptz[], %(action)b::varchar[], %(outcome)b::varchar[],"
    " %(user_id)b::varchar[], %(ip)b::varchar[], %(request_id)b::varchar[],"
    " %(stripe_object)b::varchar[], %(detail)b::varchar[])"
)
_AUDIT_COLUMNS = (
    "at", "action", "outcome", "user_id", "ip", "request_id", "stripe_object", "detail"
)  # fmt: skip


def write_audit_entries(
    entries: Sequence[dict[str, Any]], writer: StatementWriter | None = None
) -> None:
    """Several audit entries in one INSERT (the applier's, one per event; a batch's
    redeliveries'). On PostgreSQL through `writer` when given, else in the session's
    transaction."""
    if not entries:
        return
    if writer is not None and dialect_name() == "postgresql":
        writer.execute(
            _AUDIT_POSTGRESQL, {name: [entry[name] for entry in entries] for name in _AUDIT_COLUMNS}
        )
    else:
        db.session.execute(insert(AuditEntry).values(list(entries)))


def unpark(ids: Iterable[str]) -> None:
    """Make events pending again (replay), applied ones included."""
    db.session.execute(
        update(events)
        .where(events.c.id.in_(list(ids)))
        .values(processed=False, parked_at=None, next_attempt_at=None)
    )


def event_state(event_id: str) -> Row[Any] | None:
    """Whether an event is processed, and its last error."""
    return db.session.execute(
        select(events.c.processed, events.c.error).where(events.c.id == event_id)
    ).first()
