"""The webhook's SQL, built once per process: the insert that records and claims an event (with
its audit entry, on PostgreSQL), the claim of an event a failed attempt left unprocessed, and
PostgreSQL's one statement for a subscription event (recorded, audited and applied together).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import BigInteger, Text, bindparam, cast, exists, func, insert, select, true, update
from sqlalchemy.dialects.postgresql import JSONB

from app.billing.subscription_store import store_event_statement_if
from app.database import insert_for
from app.models import AuditEntry, WebhookEvent

events = WebhookEvent.__table__
audit_log = AuditEntry.__table__


def _raw_json(dialect: str) -> Any:
    """The raw body into the JSON column without parsing and re-serialising it."""
    raw = bindparam("raw", type_=Text)
    return cast(raw, JSONB) if dialect == "postgresql" else raw


@functools.cache
def record_statement(dialect: str, claim: bool) -> Any:
    """Insert the event row: as processed (`claim`, one statement that records and claims a
    new event) or as failed. Built once per process.

    On PostgreSQL the claim also writes the event's audit entry, in the same statement (a
    data-modifying CTE that inserts it only when the event row was inserted): one round trip
    for both. SQLite has no such CTE (and no round trips to save): the entry is one more
    INSERT in the same transaction."""
    statement = _event_insert(dialect, claim)
    if not claim:
        return statement.on_conflict_do_update(
            index_elements=[events.c.id],
            set_={
                "attempts": events.c.attempts + 1,
                "error": statement.excluded.error,
                "raw_body": func.coalesce(events.c.raw_body, statement.excluded.raw_body),
            },
            where=events.c.processed.is_(False),
        )
    claim_statement = statement.on_conflict_do_nothing().returning(events.c.id)
    if dialect != "postgresql":
        return claim_statement
    recorded = claim_statement.cte("recorded")
    return select(recorded.c.id).add_cte(_audited(recorded))


def _event_insert(dialect: str, claim: bool) -> Any:
    """The event row in its final shape: processed (claimed) or failed."""
    return insert_for(dialect, events).values(
        id=bindparam("id"),
        type=bindparam("type"),
        data=_raw_json(dialect),
        raw_body=bindparam("raw_body", type_=Text),
        stripe_created=bindparam("stripe_created", type_=BigInteger),
        processed=claim,
        processed_at=bindparam("now") if claim else None,
        attempts=1,
        error=None if claim else bindparam("error"),
        created_at=bindparam("now"),
    )


def _audited(recorded: Any) -> Any:
    """The event's audit entry, inserted only when the event row was (`recorded` non-empty)."""
    columns = ("at", "action", "outcome", "user_id", "ip", "request_id", "stripe_object", "detail")
    entry = select(
        *(bindparam(f"audit_{name}", type_=audit_log.c[name].type) for name in columns)
    ).where(exists(select(recorded.c.id)))
    return (
        insert(audit_log).from_select(list(columns), entry).returning(audit_log.c.id).cte("audited")
    )


@functools.cache
def record_and_store_statement() -> Any:
    """PostgreSQL, a subscription event: record it (with its audit entry) and apply the guarded
    upsert of its subscription in ONE statement, the upsert running only if the event row was
    inserted. A single statement is atomic and needs no round trip of its own for each part:
    with BEGIN and COMMIT, an in-order event costs three.

    Parameters: those of `record_statement` and `store_params(..., prefix=STORE_PREFIX)`.
    Returns no row when the event was already there (a redelivery, or an earlier attempt that
    failed: see `retry_claim_statement`); otherwise the event id and what the upsert wrote
    (all NULL when the ordering rule kept the stored row)."""
    insert_event = _event_insert("postgresql", True).on_conflict_do_nothing()
    claim = insert_event.returning(events.c.id).cte("recorded")
    stored = store_event_statement_if(exists(select(claim.c.id)), STORE_PREFIX).cte("stored")
    return (
        select(claim.c.id.label("event_id"), *stored.c)
        .select_from(claim.outerjoin(stored, true()))
        .add_cte(_audited(claim))
    )


STORE_PREFIX = "sub_"


@functools.cache
def retry_claim_statement() -> Any:
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
