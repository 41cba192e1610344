"""Consuming generations: all or nothing, never past the limit, once per idempotency key.

One transaction per request:
1. claim the key: INSERT the ledger row (ON CONFLICT DO NOTHING on (user_id, key)). A second
   request with the same key waits here for the first to commit (PostgreSQL) or queues on the
   write lock (SQLite), then finds the row and replays its result.
2. settle the user's plan and period if they are out of date (rare; see usage_periods.py),
   from the subscriptions loaded with the user (login_required).
3. a single conditional UPDATE adds `count` only if the result stays within the limit; the
   database re-checks the condition on the row it locks, so parallel requests can never
   overshoot, however many there are. No read-then-write.
4. record the outcome on the ledger row and commit both together.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update

from app.billing.entitlements import Entitlements
from app.billing.errors import Conflict
from app.billing.rows import AnyUser
from app.billing.summary import loaded_deciding_subscription
from app.billing.usage_periods import settle_entitlements
from app.database import commit, commit_if_written, dialect_name, end_read, insert_for
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
    # The key is claimed before any lock on the user row is taken: a request waiting for the
    # same key then holds nothing another request could be waiting for (no deadlock).
    if not _claim_key(user.id, idempotency_key, count):
        # A request with this key committed first (we may have waited for it): its result stands.
        end_read()
        earlier = ledger_entry(user.id, idempotency_key)
        if earlier is None:  # it was rolled back after all; the client may simply retry
            raise Conflict("A request with this idempotencyKey is in progress.", code="retry")
        return _replay(earlier, count)
    entitlements = settle_entitlements(user, loaded_deciding_subscription(user), now)
    # What a settle wrote goes to the database first: the counter UPDATE below is a Core
    # statement (no autoflush) and must add to the settled row, not be overwritten by it.
    db.session.flush()
    outcome = _add_within_limit(user.id, count, entitlements, idempotency_key)
    _record(user.id, outcome)
    commit()
    metrics.count_usage("granted" if outcome.granted else "refused")
    return outcome


# The statements of a consume, built once as Core statements on the tables (no ORM
# bookkeeping per request; each request only binds its values). settle_entitlements has
# flushed whatever it wrote before they run.
_users = User.__table__.c
_ledger = UsageLedgerEntry.__table__.c
_COUNTER = (_users.generations_used, _users.usage_period_start, _users.usage_period_end)
_ADD = (
    update(User.__table__)
    .where(_users.id == bindparam("user_id"))
    .values(generations_used=_users.generations_used + bindparam("count"))
    .returning(*_COUNTER)
)
# The database re-checks the condition on the row it locks: parallel requests never overshoot.
_ADD_WITHIN = _ADD.where(_users.generations_used + bindparam("count") <= bindparam("limit"))
_READ_COUNTER = select(*_COUNTER).where(_users.id == bindparam("user_id"))
_RECORD = (
    update(UsageLedgerEntry.__table__)
    .where(_ledger.user_id == bindparam("owner"), _ledger.idempotency_key == bindparam("key"))
    .values(
        result=bindparam("outcome"),
        tier=bindparam("plan"),
        generations_used=bindparam("used_after"),
        generations_limit=bindparam("limit_applied"),
        period_start=bindparam("starts"),
        period_end=bindparam("ends"),
    )
)


@functools.cache
def _claim_statement(dialect: str) -> Any:
    """INSERT the ledger row ... ON CONFLICT DO NOTHING RETURNING its id (see insert_or_ignore)."""
    table = UsageLedgerEntry.__table__
    return insert_for(dialect, table).on_conflict_do_nothing().returning(_ledger.id)


def _claim_key(user_id: str, key: str, count: int) -> bool:
    """True when this request inserted the ledger row for its key."""
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


def _add_within_limit(
    user_id: str, count: int, entitlements: Entitlements, key: str
) -> Consumption:
    limit = entitlements.limit
    row = db.session.execute(
        _ADD if limit is None else _ADD_WITHIN,
        {"user_id": user_id, "count": count, "limit": limit},
    ).first()
    granted = row is not None
    if row is None:  # refused: report the counter as it stands
        row = db.session.execute(_READ_COUNTER, {"user_id": user_id}).one()
    used, period_start, period_end = row
    return Consumption(
        granted=granted,
        count=count,
        idempotency_key=key,
        tier=entitlements.tier,
        used=used,
        limit=limit,
        period_start=period_start,
        period_end=period_end,
    )


def _record(user_id: str, outcome: Consumption) -> None:
    db.session.execute(
        _RECORD,
        {
            "owner": user_id,
            "key": outcome.idempotency_key,
            "outcome": "granted" if outcome.granted else "refused",
            "plan": outcome.tier,
            "used_after": outcome.used,
            "limit_applied": outcome.limit,
            "starts": outcome.period_start,
            "ends": outcome.period_end,
        },
    )


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
