"""The one guarded path for storing a subscription we read from Stripe ourselves.

A read (the redirect's checkout session, `?refresh=true`, `billing sync`, the answers to our own
cancel and resume) is Stripe's truth at the moment it was made. Its answer can arrive late: a
webhook may have written a newer state to the row after the read began. So the row is locked,
and if it was written since the read started, the copy in hand is not trusted and the
subscription is read again while the row is locked (no webhook can slip in between that read and
our write; `reread_subscription` is the one Stripe call allowed inside a transaction). A
subscription that ended stays ended (`subscription_store.store_subscription`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.billing.accounts.store import lock_owner
from app.billing.subscriptions.store import apply_subscription, subscription_row
from app.db import row_for_update
from app.models import Subscription
from app.stripe.gateway import StripeDict, StripeGateway

# App servers' clocks may disagree a little; a row written this close to the start counts as
# written during the read (the cost of being wrong this way is one extra Stripe read).
CLOCK_MARGIN = timedelta(seconds=5)


def written_since(row: Subscription, started: datetime) -> bool:
    """True when the row holds a state written at or after `started` (less the clock margin)."""
    updated = row.updated_at
    if updated is not None and updated.tzinfo is None:  # SQLite hands back naive datetimes
        updated = updated.replace(tzinfo=UTC)
    return row.has_state and updated is not None and updated >= started - CLOCK_MARGIN


def trusted_copy(
    gateway: StripeGateway, row: Subscription, subscription: StripeDict, read_started: datetime
) -> tuple[StripeDict, bool]:
    """The copy to store for a locked `row`: `subscription` if nothing was written to the row
    since the read began, else a fresh read (second value True)."""
    if written_since(row, read_started):
        return gateway.reread_subscription(row.id), True
    return subscription, False


def apply_read(
    gateway: StripeGateway, subscription: StripeDict, *, read_started: datetime
) -> Subscription:
    """Store `subscription`, read by a call that began at `read_started`; the row as stored."""
    lock_owner(subscription)  # the user, then the subscription (accounts.store.lock_owner)
    row = row_for_update(Subscription, subscription["id"])
    subscription, _ = trusted_copy(gateway, row, subscription, read_started)
    apply_subscription(subscription)
    return subscription_row(row.id)
