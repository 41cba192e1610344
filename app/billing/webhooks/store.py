"""The webhook's SQL, built once per process: the insert that records and claims an event (with
its audit entry, on PostgreSQL), the claim of an event a failed attempt left unprocessed, and
PostgreSQL's one statement for a subscription event (recorded, audited and applied together).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    BigInteger,
    Text,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from app.billing.subscriptions.store import store_event_statement_if
from app.db import compile_prebuilt, insert_for
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
    return _claim_result(recorded)


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


AUDIT_COLUMNS = (
    "at",
    "action",
    "outcome",
    "user_id",
    "ip",
    "request_id",
    "stripe_object",
    "detail",
)


def _claim_result(recorded: Any, *stored_columns: Any) -> Any:
    """One row: the event id if `recorded` inserted it (else NULL), whether the statement
    wrote a duplicate's audit entry, then `stored_columns`. With the audit entries' CTEs."""
    duplicate = _audited_duplicate(recorded)
    return select(
        select(recorded.c.id).scalar_subquery().label("event_id"),
        exists(select(duplicate.c.id)).label("duplicate_audited"),
        *stored_columns,
    ).add_cte(_audited(recorded), duplicate)


def _audited(recorded: Any) -> Any:
    """The event's audit entry, inserted only when the event row was (`recorded` non-empty)."""
    entry = select(*_audit_values()).where(exists(select(recorded.c.id)))
    return _audit_insert(entry, "audited")


def _audited_duplicate(recorded: Any) -> Any:
    """A redelivery's entry ("webhook.duplicate"), when the event was there already and
    processed as this statement sees it. One still in flight elsewhere isn't seen: the caller's
    claim of it decides, and writes the entry then."""
    processed_before = exists(
        select(events.c.id).where(events.c.id == bindparam("id"), events.c.processed.is_(True))
    )
    values = _audit_values(action="webhook.duplicate")
    entry = select(*values).where(~exists(select(recorded.c.id)), processed_before)
    return _audit_insert(entry, "audited_duplicate")


def _audit_values(action: str | None = None) -> list[Any]:
    return [
        literal(action, type_=audit_log.c.action.type)
        if name == "action" and action is not None
        else bindparam(f"audit_{name}", type_=audit_log.c[name].type)
        for name in AUDIT_COLUMNS
    ]


def _audit_insert(entry: Any, name: str) -> Any:
    statement = insert(audit_log).from_select(list(AUDIT_COLUMNS), entry)
    return statement.returning(audit_log.c.id).cte(name)


@functools.cache
def record_and_store_statement() -> Any:
    """PostgreSQL, a subscription event: record it (with its audit entry) and apply the guarded
    upsert of its subscription in ONE statement, the upsert running only if the event row was
    inserted. A single statement is atomic and needs no round trip of its own for each part:
    with BEGIN and COMMIT, an in-order event costs three, and so does a redelivery.

    Parameters: those of `record_statement` and `store_params(..., prefix=STORE_PREFIX)`.
    Returns one row: as `record_statement` (the event id, or NULL when it was there already;
    whether a duplicate's entry was written), then what the upsert wrote (all NULL when the
    ordering rule kept the stored row, or the event was not recorded)."""
    insert_event = _event_insert("postgresql", True).on_conflict_do_nothing()
    recorded = insert_event.returning(events.c.id).cte("recorded")
    stored = store_event_statement_if(exists(select(recorded.c.id)), STORE_PREFIX).cte("stored")
    return _claim_result(
        recorded, *(select(column).scalar_subquery().label(column.name) for column in stored.c)
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


def compile_webhook_statements() -> None:
    """At start-up (in an app context): the webhook's statements, compiled for the driver."""
    statements = [record_statement("postgresql", True), record_and_store_statement()]
    compile_prebuilt(statements)
