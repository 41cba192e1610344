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

from dataclasses import dataclass

from sqlalchemy import select, update

from app.billing.entitlements import Entitlements
from app.billing.errors import Conflict
from app.billing.summary import deciding_subscription
from app.billing.usage_periods import settle_entitlements
from app.database import commit, commit_if_written, end_read, insert_or_ignore
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


def consume_generations(user: User, *, count: int, idempotency_key: str, now: int) -> Consumption:
    # The key is claimed before any lock on the user row is taken: a request waiting for the
    # same key then holds nothing another request could be waiting for (no deadlock).
    if not _claim_key(user.id, idempotency_key, count):
        # A request with this key committed first (we may have waited for it): its result stands.
        end_read()
        earlier = ledger_entry(user.id, idempotency_key)
        if earlier is None:  # it was rolled back after all; the client may simply retry
            raise Conflict("A request with this idempotencyKey is in progress.", code="retry")
        return _replay(earlier, count)
    entitlements = settle_entitlements(user, deciding_subscription(user.subscriptions), now)
    outcome = _add_within_limit(user.id, count, entitlements, idempotency_key)
    _record(user.id, outcome)
    commit()
    metrics.count_usage("granted" if outcome.granted else "refused")
    return outcome


def _claim_key(user_id: str, key: str, count: int) -> bool:
    """True when this request inserted the ledger row for its key."""
    return insert_or_ignore(
        UsageLedgerEntry,
        {
            "user_id": user_id,
            "kind": "consume",
            "count": count,
            "result": "pending",
            "idempotency_key": key,
            "created_at": utcnow(),
        },
    )


def _add_within_limit(
    user_id: str, count: int, entitlements: Entitlements, key: str
) -> Consumption:
    statement = update(User).where(User.id == user_id)
    if entitlements.limit is not None:
        statement = statement.where(User.generations_used + count <= entitlements.limit)
    returned = (User.generations_used, User.usage_period_start, User.usage_period_end)
    row = db.session.execute(
        statement.values(generations_used=User.generations_used + count)
        .returning(*returned)
        .execution_options(synchronize_session=False)
    ).first()
    granted = row is not None
    if row is None:  # refused: report the counter as it stands
        row = db.session.execute(select(*returned).where(User.id == user_id)).one()
    used, period_start, period_end = row
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


def _record(user_id: str, outcome: Consumption) -> None:
    db.session.execute(
        update(UsageLedgerEntry)
        .where(
            UsageLedgerEntry.user_id == user_id,
            UsageLedgerEntry.idempotency_key == outcome.idempotency_key,
        )
        .values(
            result="granted" if outcome.granted else "refused",
            tier=outcome.tier,
            generations_used=outcome.used,
            generations_limit=outcome.limit,
            period_start=outcome.period_start,
            period_end=outcome.period_end,
        )
        .execution_options(synchronize_session=False)
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
    entitlements = settle_entitlements(user, deciding_subscription(user.subscriptions), now)
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
    entitlements = settle_entitlements(user, deciding_subscription(user.subscriptions), now)
    commit_if_written()
    return entitlements
