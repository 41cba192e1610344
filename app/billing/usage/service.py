"""Consuming generations: all or nothing, never past the limit, once per idempotency key.

One transaction per request:
1. claim the key: INSERT the ledger row (ON CONFLICT DO NOTHING on (user_id, key)). A second
   request with the same key waits here for the first to commit (PostgreSQL) or queues on the
   write lock (SQLite), then finds the row and replays its result.
2. settle the user's plan and period if they are out of date (rare; see usage_periods.py),
   from the subscriptions read with the user at sign-in (login_required_lean).
3. a single conditional UPDATE adds `count` only if the result stays within the limit; the
   database re-checks the condition on the row it locks, so parallel requests can never
   overshoot, however many there are. No read-then-write.
4. record the outcome on the ledger row and commit both together (on PostgreSQL, a granted
   consume does 3 and 4 in one statement).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update

from app.billing.accounts.rows import AnyUser
from app.billing.errors import Conflict
from app.billing.subscriptions.summary import loaded_deciding_subscription
from app.billing.usage.entitlements import Entitlements
from app.billing.usage.periods import settle_entitlements
from app.db import commit, commit_if_written, dialect_name, end_read, insert_for
from app.extensions import db
from app.models import UsageLedgerEntry, User, utcnow
from app.observability import metrics


@dataclass(frozen=True)
class Consumption:
    granted: bool
    count: int
    idempotency_key: str
    tier: str
    used: int
    limit: int | None
    period_start: int | None
    period_end: int | None
    replayed: bool = False

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)


def consume_generations(
    user: AnyUser, *, count: int, idempotency_key: str, now: int
) -> Consumption:
    """`user` may be the plain row read at sign-in: only a settle writes through the ORM."""
    dialect = dialect_name()
    # The key is claimed before any lock on the user row is taken: a request waiting for the
    # same key then holds nothing another request could be waiting for (no deadlock).
    if not _claim_key(dialect, user.id, idempotency_key, count):
        # A request with this key committed first (we may have waited for it): its result stands.
        end_read()
        earlier = ledger_entry(user.id, idempotency_key)
        if earlier is None:  # it was rolled back after all; the client may simply retry
            raise Conflict("A request with this idempotencyKey is in progress.", code="retry")
        return _replay(earlier, count)
    entitlements = settle_entitlements(user, loaded_deciding_subscription(user), now)
    # What a settle wrote reaches the database before the counter UPDATE adds to it: the
    # session autoflushes before every statement, Core ones included (SQLAlchemy 2).
    outcome = _add_within_limit(dialect, user.id, count, entitlements, idempotency_key)
    commit()
    metrics.count_usage("granted" if outcome.granted else "refused")
    return outcome


# The statements of a consume, built once as Core statements on the tables (no ORM
# bookkeeping per request; each request only binds its values). Parameter names are no
# column's name: SQLAlchemy would take those for values to SET.
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


def _claim_key(dialect: str, user_id: str, key: str, count: int) -> bool:
    """True when this request inserted the ledger row for its key."""
    values = {
        "user_id": user_id,
        "kind": "consume",
        "count": count,
        "result": "pending",
        "idempotency_key": key,
        "created_at": utcnow(),
    }
    claimed = db.session.execute(_claim_statement(dialect), values).first()
    return claimed is not None


def _add_within_limit(
    dialect: str, user_id: str, count: int, entitlements: Entitlements, key: str
) -> Consumption:
    """Add `count` if the counter stays within the limit, and record the outcome (granted or
    refused) on the ledger row this request claimed."""
    limited = entitlements.limit is not None
    values = {
        "owner": user_id,
        "key": key,
        "amount": count,
        "cap": entitlements.limit,
        "plan": entitlements.tier,
    }
    if dialect == "postgresql":
        row = db.session.execute(_ADD_AND_RECORD[limited], values).first()
        if row is not None:
            return _consumption(True, row, count, entitlements, key)
    else:
        row = db.session.execute(_ADD[limited], values).first()
        if row is not None:
            return _recorded(_consumption(True, row, count, entitlements, key), values)
    # Refused: report the counter as it stands.
    row = db.session.execute(_READ_COUNTER, {"owner": user_id}).one()
    return _recorded(_consumption(False, row, count, entitlements, key), values)


def _consumption(
    granted: bool, counter: Any, count: int, entitlements: Entitlements, key: str
) -> Consumption:
    used, period_start, period_end = counter
    return Consumption(
        granted=granted,
        count=count,
        idempotency_key=key,
        tier=entitlements.tier,
        used=used,
        limit=entitlements.limit,
        period_start=period_start,
        period_end=period_end,
    )


def _recorded(outcome: Consumption, values: dict[str, Any]) -> Consumption:
    """`outcome`, written to the claimed ledger row (`values`: owner, key, plan, cap)."""
    result = "granted" if outcome.granted else "refused"
    db.session.execute(
        _RECORD,
        {
            **values,
            "outcome": result,
            "used_after": outcome.used,
            "starts": outcome.period_start,
            "ends": outcome.period_end,
        },
    )
    return outcome


def ledger_entry(user_id: str, key: str) -> UsageLedgerEntry | None:
    return db.session.execute(
        select(UsageLedgerEntry)
        .where(UsageLedgerEntry.user_id == user_id, UsageLedgerEntry.idempotency_key == key)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _replay(entry: UsageLedgerEntry, count: int) -> Consumption:
    """The first request's result, as it was then; a different count is a client bug."""
    first = Consumption(
        granted=entry.result == "granted",
        count=entry.count,
        idempotency_key=entry.idempotency_key or "",
        tier=entry.tier or "",
        used=entry.generations_used or 0,
        limit=entry.generations_limit,
        period_start=entry.period_start,
        period_end=entry.period_end,
        replayed=True,
    )
    end_read()  # nothing to write: end the transaction (and SQLite's write lock)
    if first.count != count:
        raise Conflict(
            f"This idempotencyKey was already used for {first.count} generation(s); "
            "use a new key for a new request.",
            code="idempotency_key_reused",
        )
    return first


@dataclass(frozen=True)
class UsageOverview:
    user: User
    entitlements: Entitlements
    entries: list[UsageLedgerEntry]


def usage_overview(user: User, *, now: int, limit: int = 50) -> UsageOverview:
    """The current period and its ledger entries, newest first (settling the period first)."""
    entitlements = settle_entitlements(user, loaded_deciding_subscription(user), now)
    commit_if_written()
    entries = (
        db.session.execute(
            select(UsageLedgerEntry)
            .where(
                UsageLedgerEntry.user_id == user.id,
                UsageLedgerEntry.period_start == user.usage_period_start,
            )
            .order_by(UsageLedgerEntry.id.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )
    return UsageOverview(user, entitlements, list(entries))


def current_entitlements(user: User, *, now: int) -> Entitlements:
    entitlements = settle_entitlements(user, loaded_deciding_subscription(user), now)
    commit_if_written()
    return entitlements
