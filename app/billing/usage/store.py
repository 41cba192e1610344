"""The usage tables' SQL: the ledger claim, the guarded counter update and the outcome record.

The statements are built once as Core statements on the tables (no ORM bookkeeping per
request; each request only binds its values). On PostgreSQL a granted consume adds and records
in one statement (two UPDATEs in a WITH: one round trip fewer); SQLite has no data-modifying
WITH, so there it is the UPDATE, then the record."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, text, update

from app.db import dialect_name, execute_prebuilt, insert_for
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


def _consume_statement(*, limited: bool) -> Any:
    """PostgreSQL: a whole consume of a settled user in one statement (see `consume_at_once`).

    Locks are taken in one order, the user row (the UPDATE, or the locking read of a refusal)
    before the ledger's key, as the transactional path does (`lock_owner`), so no two consumes
    wait on each other. The ledger row is inserted once, with its outcome, after the counter
    moved: a CTE can't update a row another part of the same statement inserts, so nothing is
    inserted as pending first. Data-modifying CTEs run in the order their results are needed:
    `added` before `standing` (its one-time NOT EXISTS), both before `recorded`."""
    within = "AND u.generations_used + :amount <= :cap" if limited else ""
    return text(_CONSUME_SQL.replace("{within}", within))


# Every value is a bound parameter; `{within}` is the only part filled in, with a constant.
_CONSUME_SQL = """
WITH prior AS (
    SELECT l.result, l.tier, l.count, l.idempotency_key, l.generations_used,
           l.generations_limit, l.period_start, l.period_end
    FROM usage_ledger AS l WHERE l.user_id = :owner AND l.idempotency_key = :key
), added AS (
    UPDATE users AS u SET generations_used = u.generations_used + :amount
    WHERE u.id = :owner {within} AND NOT EXISTS (SELECT FROM prior)
    RETURNING u.generations_used, u.usage_period_start, u.usage_period_end
), standing AS (
    SELECT u.generations_used, u.usage_period_start, u.usage_period_end FROM users AS u
    WHERE u.id = :owner AND u.credit_balance < :amount
      AND NOT EXISTS (SELECT FROM prior) AND NOT EXISTS (SELECT FROM added)
    FOR NO KEY UPDATE
), outcome AS (
    SELECT 'granted' AS result, * FROM added UNION ALL SELECT 'refused', * FROM standing
), recorded AS (
    INSERT INTO usage_ledger (user_id, kind, count, result, idempotency_key, tier,
                              generations_used, generations_limit, period_start, period_end)
    SELECT :owner, 'consume', CAST(:amount AS integer), o.result, :key, :plan,
           o.generations_used, CAST(:cap AS integer), o.usage_period_start, o.usage_period_end
    FROM outcome AS o
    RETURNING result, tier, count, idempotency_key, generations_used, generations_limit,
              period_start, period_end
)
SELECT false AS replayed, * FROM recorded UNION ALL SELECT true, * FROM prior"""
_CONSUME = {limited: _consume_statement(limited=limited) for limited in (False, True)}


def consumes_at_once() -> bool:
    """True where `consume_at_once` runs: PostgreSQL (SQLite has no data-modifying WITH)."""
    return dialect_name() == "postgresql"


def consume_at_once(values: dict[str, Any], connection: Connection | None = None) -> Any:
    """PostgreSQL, a user whose plan and period are settled: add `amount` within `cap` and
    record the outcome on a new ledger row for `key`, in one statement (run it in autocommit:
    one round trip). The row: (replayed, result, tier, count, idempotency_key, generations_used,
    generations_limit, period_start, period_end), the first request's entry when `key` was
    used before (replayed), else this one's. None, with nothing written, when the quota refuses
    and the user holds enough credits (the transactional path spends them).

    A request with the same key in flight at the same moment makes this statement fail on the
    key's unique constraint once the other commits (IntegrityError), with nothing written."""
    return execute_prebuilt(_CONSUME[values["cap"] is not None], values, connection).first()


_LOCK_OWNER = (
    select(_users.id).where(_users.id == bindparam("owner")).with_for_update(key_share=True)
)


def lock_owner(user_id: str) -> None:
    """Lock the user row before claiming a key (PostgreSQL; SQLite's writers queue on its
    one write lock): every consume takes the user row first, then its key, so a request that
    waits for a key never holds what the key's holder waits for."""
    if dialect_name() == "postgresql":
        db.session.execute(_LOCK_OWNER, {"owner": user_id})


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
