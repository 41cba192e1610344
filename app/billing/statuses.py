"""Groups of Stripe subscription statuses that the rules branch on.

Which tier a status grants, and for how long, is the grace policy in `entitlements.py`."""

from __future__ import annotations

from typing import Protocol

# Statuses in which the user still has a subscription to manage in the portal rather than buy.
LIVE_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid", "paused"})

# Terminal statuses: Stripe never moves a subscription out of these.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})


class _HasStatus(Protocol):
    @property
    def status(self) -> str | None: ...


class StatusFacts:
    """What a subscription's status says, for the ORM row (app/models.py) and the plain row
    read without the ORM (app/billing/accounts/rows.py) alike: one definition for both."""

    __slots__ = ()

    @property
    def has_state(self: _HasStatus) -> bool:
        """False for a row we know only by id (from a checkout) until its object arrives."""
        return self.status is not None

    @property
    def is_live(self: _HasStatus) -> bool:
        """Still a subscription to manage in the portal rather than one to buy."""
        return self.status in LIVE_STATUSES

    @property
    def has_ended(self: _HasStatus) -> bool:
        """Terminal: Stripe never moves a subscription out of these statuses."""
        return self.status in ENDED_STATUSES
