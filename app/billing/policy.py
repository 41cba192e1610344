"""Which tier a subscription status grants."""

from __future__ import annotations

# Stripe keeps retrying a past_due invoice, so the user keeps what they pay for meanwhile.
PRO_STATUSES = frozenset({"active", "trialing", "past_due"})

# Statuses in which the user still has a subscription to manage in the portal rather than buy.
LIVE_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid", "paused"})

# Terminal statuses: Stripe never moves a subscription out of these.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})


def tier_for_status(status: str | None) -> str:
    return "pro" if status in PRO_STATUSES else "free"
