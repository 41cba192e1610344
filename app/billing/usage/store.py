"""The usage tables' SQL: the ledger claim, the guarded counter update and the outcome record.

The statements are built once as Core statements on the tables (no ORM bookkeeping per
request; each request only binds its values). On PostgreSQL a granted consume adds and records
in one statement (two UPDATEs in a WITH: one round trip fewer); SQLite has no data-modifying
WITH, so there it is the UPDATE, then the record."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select, update

from app.db import dialect_name, insert_for
from app.extensions import db
from app.models import UsageLedgerEntry, User, utcnow

Counter = Sequence[Any]  # (generations_used, usage_period_start, usage_period_end)

# Parameter names are no column's name: SQLAlchemy would take those for values to SET.
_users = User.__table__.c
_ledger = UsageLedgerEntry.__table__.c
_COUNTER = (_users.generations_used, _users.usage_period_start, _users.usage_period_end)


def _add(*, limited: bool) -> Any:
    """UPDATE the counter by `amount`; `limited`: only if it stays within `cap`. The database
    re-checks the condition on the row it locks, so parallel requests never overshoot."""
    statement = update(User.__table__).where(_users.id == bindparam("owner"))
    if limited:
        statement = statement.where(
            _users.generations_used + bindparam("amount") <= bindparam("cap")
        )
    return statement.values(generations_used=_users.generations_used + bindparam("amount"))


def _add_and_record(*, limited: bool) -> Any:
    """PostgreSQL: `_add` and, when it added, the granted outcome on the claimed ledger row, in
    one statement (two UPDATEs in a WITH): one round trip fewer. Returns no row if refused."""
    added = _add(limited=limited).returning(_users.id, *_COUNTER).cte("added")
    recorded = (
        update(UsageLedgerEntry.__table__)
        .where(_ledger.user_id == added.c.id, _ledger.idempotency_key == bindparam("key"))
        .values(
            result="granted",
            tier=bindparam("plan"),
            generations_used=added.c.generations_used,
            generations_limit=bindparam("cap"),
            period_start=added.c.usage_period_start,
            period_end=added.c.usage_period_end,
        )
        .cte("recorded")
    )
    counter = (added.c.generations_used, added.c.usage_period_start, added.c.usage_period_end)
    return select(*counter).add_cte(recorded)


# by `limited`
_ADD = {limited: _add(limited=limited).returning(*_COUNTER) for limited in (False, True)}
_ADD_AND_RECORD = {limited: _add_and_record(limited=limited) for limited in (False, True)}
_READ_COUNTER = select(*_COUNTER).where(_users.id == bindparam("owner"))
_RECORD = (
    update(UsageLedgerEntry.__table__)
    .where(_ledger.user_id == bindparam("owner"), _ledger.idempotency_key == bindparam("key"))
    .values(
        result=bindparam("outcome"),
        tier=bindparam("plan"),
        generations_used=bindparam("used_after"),
        generations_limit=bindparam("cap"),
        period_start=bindparam("starts"),
        period_end=bindparam("ends"),
    )
)


@functools.cache
def _claim_statement(dialect: str) -> Any:
    """INSERT the ledger row ... ON CONFLICT DO NOTHING RETURNING its id (see insert_or_ignore)."""
    table = UsageLedgerEntry.__table__
    return insert_for(dialect, table).on_conflict_do_nothing().returning(_ledger.id)


def claim_key(user_id: str, key: str, count: int) -> bool:
    """Insert the ledger row for `key` as pending; True when this request inserted it (a
    request with the same key waits for the first to commit, then finds it there)."""
    values = {
        "user_id": user_id,
        "kind": "consume",
        "count": count,
        "result": "pending",
        "idempotency_key": key,
        "created_at": utcnow(),
    }
    claimed = db.session.execute(_claim_statement(dialect_name()), values).first()
    return claimed is not None


def add_within_limit(values: dict[str, Any]) -> Counter | None:
    """Add `amount` to the owner's counter if it stays within `cap` (None: unlimited); on
    PostgreSQL the granted outcome is recorded on the claimed ledger row in the same statement.
    The counter afterwards, or None when refused (nothing written)."""
    limited = values["cap"] is not None
    if dialect_name() == "postgresql":
        return db.session.execute(_ADD_AND_RECORD[limited], values).first()
    row = db.session.execute(_ADD[limited], values).first()
    if row is not None:
        record_outcome(values, "granted", row)
    return row


def read_counter(user_id: str) -> Counter:
    return db.session.execute(_READ_COUNTER, {"owner": user_id}).one()


def record_outcome(values: dict[str, Any], outcome: str, counter: Counter) -> None:
    """The outcome on the claimed ledger row (`values`: owner, key, plan, cap)."""
    used, starts, ends = counter
    db.session.execute(
        _RECORD,
        {**values, "outcome": outcome, "used_after": used, "starts": starts, "ends": ends},
    )


def ledger_entry(user_id: str, key: str) -> UsageLedgerEntry | None:
    return db.session.execute(
        select(UsageLedgerEntry)
        .where(UsageLedgerEntry.user_id == user_id, UsageLedgerEntry.idempotency_key == key)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def ledger_entries(user_id: str, period_start: int | None, limit: int) -> list[UsageLedgerEntry]:
    """The entries of one usage period, newest first."""
    entries = db.session.execute(
        select(UsageLedgerEntry)
        .where(UsageLedgerEntry.user_id == user_id, UsageLedgerEntry.period_start == period_start)
        .order_by(UsageLedgerEntry.id.desc())
        .limit(limit)
    ).scalars()
    return list(entries)
