"""Groups of Stripe subscription statuses that the rules branch on.

Which tier a status grants, and for how long, is the grace policy in `entitlements.py`."""

from __future__ import annotations

# Statuses in which the user still has a subscription to manage in the portal rather than buy.
LIVE_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid", "paused"})

# Terminal statuses: Stripe never moves a subscription out of these.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})
