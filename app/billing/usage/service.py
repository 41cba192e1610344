"""Consuming generations: all or nothing, never past the limit, once per idempotency key.

On PostgreSQL, for a user whose plan and period are settled (nearly every request), the whole
consume is one statement in autocommit (`consume_at_once` in usage/store.py): the guarded
counter UPDATE and the ledger row with its outcome, or the first request's entry for a key
used before. A request racing one with the same key fails on the key's unique constraint with
nothing written, and replays the winner's entry. The rest (SQLite, a settle to write, credits
to spend) is one transaction:
0. lock the user row (PostgreSQL), so every consume takes the user row before its key.
1. claim the key: INSERT the ledger row (ON CONFLICT DO NOTHING on (user_id, key)). A second
   request with the same key waits for the first to commit (the user row's lock on PostgreSQL,
   SQLite's write lock), then finds the row and replays its result.
2. settle the user's plan and period if they are out of date (rare; see usage_periods.py),
   from the subscriptions read with the user at sign-in (login_required_lean).
3. a single conditional UPDATE adds `count` only if the result stays within the limit; the
   database re-checks the condition on the row it locks, so parallel requests can never
   overshoot, however many there are. No read-then-write.
4. record the outcome on the ledger row and commit both together (on PostgreSQL, a granted
   consume does 3 and 4 in one statement: usage/store.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.billing.accounts.rows import AnyUser
from app.billing.credits.store import spend_credits
from app.billing.errors import Conflict
from app.billing.subscriptions.summary import loaded_deciding_subscription
from app.billing.time import now_ms
from app.billing.usage.entitlements import Entitlements
from app.billing.usage.periods import settle_entitlements, settled_entitlements
from app.billing.usage.store import (
    add_within_limit,
    claim_key,
    consume_at_once,
    consumes_at_once,
    ledger_entries,
    ledger_entry,
    lock_owner,
    read_counter,
    record_outcome,
)
from app.db import commit_if_written, end_read, single_statement_writes, unit_of_work
from app.models import UsageLedgerEntry, User
from app.observability import metrics

CREDITS = "credits"  # the ledger's tier for generations paid with a credit pack


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
    user: AnyUser, *, count: int, idempotency_key: str, now: int | None = None
) -> Consumption:
    """`user` may be the plain row read at sign-in: only a settle writes through the ORM."""
    now = now_ms() if now is None else now
    subscription = loaded_deciding_subscription(user)
    if consumes_at_once():
        settled = settled_entitlements(user, subscription, now)
        if settled is not None:
            done = _consume_at_once(user.id, count, settled, idempotency_key)
            if done is not None:
                return done
    with unit_of_work():
        lock_owner(user.id)
        claimed = claim_key(user.id, idempotency_key, count)
        if claimed:
            entitlements = settle_entitlements(user, subscription, now)
            # What a settle wrote reaches the database before the counter UPDATE adds to it:
            # the session autoflushes before every statement, Core ones included.
            outcome = _add_within_limit(user.id, count, entitlements, idempotency_key)
    if not claimed:
        # A request with this key committed first (we may have waited for it): its result
        # stands.
        earlier = ledger_entry(user.id, idempotency_key)
        if earlier is None:  # it was rolled back after all; the client may simply retry
            raise Conflict("A request with this idempotencyKey is in progress.", code="retry")
        return _replay(earlier, count)
    metrics.count_usage("granted" if outcome.granted else "refused")
    return outcome


def _consume_at_once(
    user_id: str, count: int, entitlements: Entitlements, key: str
) -> Consumption | None:
    """The one-statement consume (PostgreSQL); None when credits must be spent (nothing was
    written: the transactional path does it)."""
    values = _consume_parameters(user_id, count, entitlements, key)
    try:
        with single_statement_writes() as connection:
            row = consume_at_once(values, connection)
    except IntegrityError:
        # The same key committed by a request running at the same moment: its result stands.
        earlier = ledger_entry(user_id, key)
        if earlier is None:
            raise
        return _replay(earlier, count)
    if row is None:
        return None
    if row.replayed:
        entry = {name: value for name, value in row._mapping.items() if name != "replayed"}
        return _replay(UsageLedgerEntry(**entry), count)  # a copy, never added to the session
    granted = row.result == "granted"
    metrics.count_usage("granted" if granted else "refused")
    counter = (row.generations_used, row.period_start, row.period_end)
    return _consumption(granted, counter, count, entitlements, key)


def _add_within_limit(
    user_id: str, count: int, entitlements: Entitlements, key: str
) -> Consumption:
    """Add `count` if the counter stays within the limit, and record the outcome (granted or
    refused) on the ledger row this request claimed."""
    values = _consume_parameters(user_id, count, entitlements, key)
    added = add_within_limit(values)
    if added is not None:
        return _consumption(True, added, count, entitlements, key)
    counter = read_counter(user_id)
    if spend_credits(user_id, count) is not None:
        # Beyond the plan's quota, paid for with a credit pack (the ledger says "credits").
        record_outcome({**values, "plan": CREDITS}, "granted", counter)
        return _consumption(True, counter, count, entitlements, key)
    # Refused: report the counter as it stands.
    record_outcome(values, "refused", counter)
    return _consumption(False, counter, count, entitlements, key)


def _consume_parameters(
    user_id: str, count: int, entitlements: Entitlements, key: str
) -> dict[str, Any]:
    """The parameters both consume statements take (the at-once one and the transactional one)."""
    return {
        "owner": user_id,
        "key": key,
        "amount": count,
        "cap": entitlements.limit,
        "plan": entitlements.tier,
    }


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
    end_read()  # the read of the first request's entry
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


def usage_overview(user: User, *, now: int | None = None, limit: int = 50) -> UsageOverview:
    """The current period and its ledger entries, newest first (settling the period first)."""
    now = now_ms() if now is None else now
    entitlements = settle_entitlements(user, loaded_deciding_subscription(user), now)
    commit_if_written()
    entries = ledger_entries(user.id, user.usage_period_start, limit)
    return UsageOverview(user, entitlements, entries)


def current_entitlements(user: User, *, now: int | None = None) -> Entitlements:
    now = now_ms() if now is None else now
    entitlements = settle_entitlements(user, loaded_deciding_subscription(user), now)
    commit_if_written()
    return entitlements
