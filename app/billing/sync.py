"""Reconcile our tables with Stripe by reading subscriptions (the truth) and applying them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select, true, update

from app.billing.policy import ENDED_STATUSES
from app.billing.subscriptions import apply_subscription, refresh_user_summary
from app.billing.webhooks import process_event
from app.database import insert_or_ignore
from app.extensions import db
from app.models import Subscription, SyncState, User
from app.stripe_gateway import StripeDict, StripeGateway

TRACKED_FIELDS = (
    "user_id",
    "customer_id",
    "status",
    "price_id",
    "plan_interval",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
    "cancel_at",
    "canceled_at",
    "ended_at",
    "trial_end",
)


@dataclass
class SyncReport:
    seen: int = 0
    changes: list[str] = field(default_factory=list)


def _snapshot(row: Subscription | None) -> dict[str, object]:
    return {name: getattr(row, name) for name in TRACKED_FIELDS} if row else {}


def apply_and_report(subscription: StripeDict, report: SyncReport) -> Subscription:
    before = _snapshot(db.session.get(Subscription, subscription["id"]))
    row = apply_subscription(subscription)
    after = _snapshot(row)
    report.seen += 1
    changed = [
        f"{name}: {before.get(name)!r} -> {after[name]!r}"
        for name in TRACKED_FIELDS
        if before.get(name) != after[name]
    ]
    if changed:
        report.changes.append(f"{row.id} ({row.user_id or 'no user'}): " + ", ".join(changed))
    return row


def sync_user(gateway: StripeGateway, user: User, report: SyncReport | None = None) -> SyncReport:
    """Re-read every subscription of the user's customer from Stripe and apply it."""
    report = report or SyncReport()
    if user.stripe_customer_id:
        for subscription in gateway.list_subscriptions(customer_id=user.stripe_customer_id):
            apply_and_report(subscription, report)
    refresh_user_summary(user)
    return report


def sync_all(gateway: StripeGateway, progress: Callable[[], None] | None = None) -> SyncReport:
    """Every subscription in Stripe (canceled ones too), then every user's summary."""
    report = SyncReport()
    seen: set[str] = set()
    for subscription in gateway.list_subscriptions():
        apply_and_report(subscription, report)
        seen.add(subscription["id"])
        if progress is not None:
            progress()
    # A row Stripe no longer lists (deleted test data, another account) is re-read on its own.
    stale = (
        db.session.execute(
            select(Subscription).where(Subscription.id.not_in(seen) if seen else true())
        )
        .scalars()
        .all()
    )
    for row in stale:
        if row.status not in ENDED_STATUSES:
            apply_and_report(gateway.retrieve_subscription(row.id), report)
    for user in db.session.execute(select(User)).scalars():
        refresh_user_summary(user)
    return report


@dataclass
class EventSyncResult:
    applied: int = 0
    duplicates: int = 0
    failures: list[str] = field(default_factory=list)


EVENTS_CURSOR = "events_cursor"


def sync_from_events(gateway: StripeGateway) -> EventSyncResult:
    """Apply events listed by Stripe since the stored cursor (the `created` second of the last
    one seen; that second is read again, and dedupe by id makes the overlap free)."""
    cursor_row = db.session.get(SyncState, EVENTS_CURSOR)
    cursor = int(cursor_row.value) if cursor_row else None
    db.session.commit()
    result = EventSyncResult()
    newest = cursor
    for event in gateway.list_events_after(cursor):
        try:
            outcome = process_event(event, gateway)
        except Exception as exc:
            result.failures.append(f"{event.get('id')} {event.get('type')}: {type(exc).__name__}")
            continue
        if outcome.status == "duplicate":
            result.duplicates += 1
        else:
            result.applied += 1
        if not result.failures:
            newest = max(newest or 0, int(event.get("created") or 0))
    if newest is not None and newest != cursor:
        insert_or_ignore(SyncState, {"key": EVENTS_CURSOR, "value": str(newest)})
        db.session.execute(
            update(SyncState).where(SyncState.key == EVENTS_CURSOR).values(value=str(newest))
        )
        db.session.commit()
    return result
