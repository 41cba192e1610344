"""Users paying for more than one live subscription, and what to do about them.

Checkout keeps it to one (checkout.py); two payments in the same instant can still
make two. `flask billing check` finds them and applies DUPLICATE_SUBSCRIPTION_POLICY:
"flag" reports them (exit 1, for a human to decide); "cancel_newer" keeps the oldest and cancels
the newer ones now, prorated, with the final invoice issued at once, so the unused time goes
back to the customer as Stripe credit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from app.billing.statuses import LIVE_STATUSES
from app.billing.subscriptions.reads import apply_read
from app.billing.subscriptions.summary import live_subscriptions
from app.db import end_read, unit_of_work
from app.extensions import db
from app.models import Subscription, utcnow
from app.stripe.gateway import StripeGateway


@dataclass
class Duplicate:
    user_id: str
    keep: str
    newer: list[str]


@dataclass
class DuplicateReport:
    found: list[Duplicate] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def find_duplicates() -> list[Duplicate]:
    users = db.session.execute(
        select(Subscription.user_id)
        .where(Subscription.user_id.is_not(None), Subscription.status.in_(LIVE_STATUSES))
        .group_by(Subscription.user_id)
        .having(func.count() > 1)
        .order_by(Subscription.user_id)
    ).scalars()
    found = []
    for user_id in [user for user in users if user]:
        # Oldest first: the first one paid for is kept.
        rows = sorted(live_subscriptions(user_id), key=lambda r: (r.stripe_created or 0, r.id))
        found.append(Duplicate(user_id, rows[0].id, [row.id for row in rows[1:]]))
    end_read()
    return found


def cancel_newer(gateway: StripeGateway, duplicates: list[Duplicate]) -> DuplicateReport:
    report = DuplicateReport(found=duplicates)
    for duplicate in duplicates:
        for subscription_id in duplicate.newer:
            try:
                asked_at = utcnow()
                answer = gateway.cancel_subscription_now(
                    subscription_id, prorate=True, invoice_now=True
                )
                with unit_of_work():
                    apply_read(gateway, answer, read_started=asked_at)
                report.canceled.append(subscription_id)
            except Exception as exc:
                report.errors.append(f"{subscription_id}: {type(exc).__name__}: {exc}")
    return report
