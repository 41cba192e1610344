"""What a user may do now: the grace policy as a pure function of (subscription state, now).

Nothing here touches the database or the clock, so the policy is tested on its own and
evaluated at read time: a pending cancel that reached its period end, or a past_due grace
that ran out, takes effect at that instant even if Stripe's webhook is late or never comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.billing.plans import Plan, Plans

DAY_MS = 86_400_000

# Stripe has not given up on these; the user keeps what they paid for (past_due: within grace).
PAID_STATUSES = frozenset({"active", "trialing", "past_due"})


class SubscriptionLike(Protocol):
    status: str | None
    price_id: str | None
    current_period_start: int | None
    current_period_end: int | None
    cancel_at_period_end: bool
    cancel_at: int | None
    past_due_since: int | None
    quantity: int | None


@dataclass(frozen=True)
class SubscriptionState:
    """The fields of a subscription the policy reads (times in ms since the epoch)."""

    status: str | None
    price_id: str | None = None
    current_period_start: int | None = None
    current_period_end: int | None = None
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    past_due_since: int | None = None
    quantity: int | None = None  # seats; None (a row from before seats) counts as one

    @classmethod
    def of(cls, row: SubscriptionLike | None) -> SubscriptionState | None:
        if row is None or row.status is None:
            return None
        return cls(
            status=row.status,
            price_id=row.price_id,
            current_period_start=row.current_period_start,
            current_period_end=row.current_period_end,
            cancel_at_period_end=bool(row.cancel_at_period_end),
            cancel_at=row.cancel_at,
            past_due_since=row.past_due_since,
            quantity=row.quantity,
        )


@dataclass(frozen=True)
class Access:
    paid: bool
    reason: str
    ends_at: int | None = None  # when paid access is already known to end (ms)


def decide_access(state: SubscriptionState | None, now: int, past_due_days: int | None) -> Access:
    """Paid or free, and why.

    trialing and active keep the paid plan; past_due keeps it for `past_due_days` after it
    started (None: as long as Stripe keeps retrying); every other status (canceled, unpaid,
    incomplete, incomplete_expired, paused) is free at once. A scheduled cancellation keeps the
    paid plan until its time and is free from then on, whatever the status still says.
    """
    if state is None:
        return Access(False, "no_subscription")
    if state.status not in PAID_STATUSES:
        return Access(False, state.status or "no_subscription")
    ends_at = cancellation_time(state)
    if ends_at is not None and now >= ends_at:
        return Access(False, "cancellation_effective")
    reason = "pending_cancel" if ends_at is not None else state.status
    if state.status == "past_due" and past_due_days is not None:
        grace_end = (state.past_due_since or now) + past_due_days * DAY_MS
        if now >= grace_end:
            return Access(False, "past_due_grace_over")
        ends_at = grace_end if ends_at is None else min(ends_at, grace_end)
        reason = "past_due_grace"
    return Access(True, reason or "active", ends_at)


def cancellation_time(state: SubscriptionState) -> int | None:
    if state.cancel_at is not None:
        return state.cancel_at
    if state.cancel_at_period_end:
        return state.current_period_end
    return None


def past_due_since(status: str | None, known_since: int | None, now: int) -> int | None:
    """When the current past_due spell began: kept while it lasts, cleared when it ends."""
    if status != "past_due":
        return None
    return known_since if known_since is not None else now


@dataclass(frozen=True)
class Entitlements:
    plan: Plan
    access: Access
    seats: int = 1

    @property
    def tier(self) -> str:
        return self.plan.id

    @property
    def limit(self) -> int | None:
        """The period's generations: the plan's allowance per seat times the seats."""
        if self.plan.generations is None:
            return None
        return self.plan.generations * self.seats

    def remaining(self, used: int) -> int | None:
        """Generations left in the period after `used` (None: unlimited)."""
        return remaining(used, self.limit)


def entitlements_for(
    state: SubscriptionState | None, plans: Plans, now: int, config: Mapping[str, Any]
) -> Entitlements:
    """The plan the user has now; `config` resolves the "monthly"/"yearly" price aliases."""
    access = decide_access(state, now, plans.grace.past_due_days)
    if not access.paid or state is None:
        return Entitlements(plans.free, access)
    seats = max(1, state.quantity or 1)
    return Entitlements(plans.paid_plan_for(state.price_id, config), access, seats)


def remaining(used: int, limit: int | None) -> int | None:
    return None if limit is None else max(0, limit - used)
