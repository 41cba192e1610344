"""Reconcile our tables with Stripe: Stripe's subscriptions are the truth, ours are a copy.

The full pass lists every subscription (all pages, `status=all` so canceled ones count),
compares each with our row and fixes what differs, re-reads the rows Stripe did not list, then
recomputes the users' summaries. Each subscription is fixed in its own short transaction, so
webhooks keep flowing while a long sync runs, and no transaction is open during a list call.

A listed copy can be older than our row: a webhook may apply a newer event between the list
call and our write. So a listed copy is written as is only if no state was written to the row
since the sync started; otherwise the subscription is re-read from Stripe while its row is
locked, and no webhook can slip in between that read and our write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from app.billing.errors import BillingError
from app.billing.statuses import ENDED_STATUSES
from app.billing.store import read_states, write_state
from app.billing.subscriptions.mirror import SUBSCRIPTION_COLUMNS as SUBSCRIPTION_FIELDS
from app.billing.subscriptions.mirror import USER_SUMMARY_COLUMNS as USER_FIELDS
from app.billing.subscriptions.ordering import row_matches
from app.billing.subscriptions.reads import trusted_copy
from app.billing.subscriptions.store import apply_subscription, subscription_row
from app.billing.subscriptions.summary import settle_user
from app.billing.webhooks.handlers import HANDLED_EVENT_TYPES
from app.billing.webhooks.receive import record_and_apply
from app.db import outside_transaction, row_for_update, unit_of_work
from app.extensions import db
from app.models import Subscription, User, WebhookEvent, utcnow
from app.stripe.gateway import StripeDict, StripeGateway
from app.stripe.objects import invoice_subscription_id, object_id

Track = Callable[[Iterable[StripeDict]], Iterable[StripeDict]]


@dataclass
class SyncReport:
    """`changes` is drift: our copy differed from Stripe with no webhook on its way (webhooks
    were missed). `pending` differed too, but Stripe's change is recent: an event about the
    subscription was made in the last `SYNC_PENDING_SECONDS` and we have not processed it yet,
    or the subscription itself is that new; its webhook is probably still being delivered.
    Both are repaired the same way."""

    seen: int = 0
    rereads: int = 0
    changes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    awaited: set[str] = field(default_factory=set)  # subscriptions with unprocessed events

    def is_pending(self, subscription: StripeDict) -> bool:
        return subscription.get("id") in self.awaited


def describe(exc: BaseException) -> str:
    if isinstance(exc, BillingError):
        return f"{exc.details.get('stripeCode') or exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _snapshot(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names} if row is not None else {}


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [
        f"{name}: {before.get(name)!r} -> {value!r}"
        for name, value in after.items()
        if before.get(name) != value
    ]


def _apply_and_report(row: Subscription, subscription: StripeDict, report: SyncReport) -> None:
    owner_id = row.user_id or (subscription.get("metadata") or {}).get("userId")
    owner = db.session.get(User, owner_id) if isinstance(owner_id, str) else None
    owner_before = _snapshot(owner, USER_FIELDS)
    before = _snapshot(row, SUBSCRIPTION_FIELDS)
    apply_subscription(subscription)
    row = subscription_row(row.id)
    lines = report.pending if report.is_pending(subscription) else report.changes
    changed = _diff(before, _snapshot(row, SUBSCRIPTION_FIELDS))
    if changed:
        lines.append(f"{row.id} ({row.user_id or 'no user'}): " + ", ".join(changed))
    if row.user_id is not None:
        # apply_subscription refreshed the owner's summary; report that here, not as a no-op later.
        user = db.session.get(User, row.user_id, populate_existing=True)
        baseline = owner_before if owner is not None and owner.id == row.user_id else {}
        user_changed = _diff(baseline, _snapshot(user, USER_FIELDS))
        if user_changed:
            lines.append(f"user {row.user_id}: " + ", ".join(user_changed))


def sync_listed(
    gateway: StripeGateway, listed: StripeDict, started: datetime, report: SyncReport
) -> None:
    """Bring one row in line with a listed copy, in a transaction of its own. Raises on
    failure (rolled back)."""
    report.seen += 1
    with unit_of_work():
        row = row_for_update(Subscription, listed["id"])
        if row.user_id is not None and row_matches(row, listed):
            return
        # The listed copy may predate what a webhook just wrote: the guarded path reads again.
        listed, reread = trusted_copy(gateway, row, listed, started)
        report.rereads += reread
        _apply_and_report(row, listed, report)


def sync_by_id(gateway: StripeGateway, subscription_id: str, report: SyncReport) -> None:
    """Re-read one subscription while its row is locked and apply it, in a transaction of its
    own."""
    report.seen += 1
    with unit_of_work():
        row = row_for_update(Subscription, subscription_id)
        fresh = gateway.reread_subscription(subscription_id)
        report.rereads += 1
        _apply_and_report(row, fresh, report)


def _refresh_and_report(user: User, report: SyncReport) -> None:
    before = _snapshot(user, USER_FIELDS)
    settle_user(user)
    db.session.flush()
    changed = _diff(before, _snapshot(user, USER_FIELDS))
    if changed:
        report.changes.append(f"user {user.id}: " + ", ".join(changed))


def refresh_users(users: Iterable[User], report: SyncReport) -> None:
    """Recompute each user's summary columns from their subscriptions, a transaction each."""
    for user in users:
        try:
            with unit_of_work():
                _refresh_and_report(user, report)
        except Exception as exc:
            report.errors.append(f"user {user.id}: {describe(exc)}")


def sync_user(gateway: StripeGateway, user: User, report: SyncReport | None = None) -> SyncReport:
    """Re-read every subscription of the user's customer from Stripe and apply it.

    Errors propagate (the API answers them as 503/400); what was fixed before stays fixed."""
    report = report or SyncReport()
    started = utcnow()
    customer_id = user.stripe_customer_id
    outside_transaction()  # no transaction (nor SQLite's write lock) across the list call
    if customer_id:
        for listed in gateway.list_subscriptions(customer_id=customer_id):
            sync_listed(gateway, listed, started, report)
    _refresh_and_report(user, report)
    return report


def _event_subscription_id(event: StripeDict) -> str | None:
    obj = (event.get("data") or {}).get("object") or {}
    kind = obj.get("object")
    if kind == "subscription":
        return object_id(obj.get("id"))
    if kind == "checkout.session":
        return object_id(obj.get("subscription"))
    if kind == "invoice":
        return invoice_subscription_id(obj)
    return None


def awaited_subscriptions(gateway: StripeGateway, since: int) -> set[str]:
    """Subscriptions named by events Stripe made since `since` that we have not processed and
    Stripe is still delivering: their webhooks are on their way (Stripe retries for days)."""
    events = [e for e in gateway.list_events_after(since) if e.get("type") in HANDLED_EVENT_TYPES]
    ids = [str(e["id"]) for e in events]
    processed: set[str] = set()
    with unit_of_work():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            processed.update(
                db.session.execute(
                    select(WebhookEvent.id).where(
                        WebhookEvent.id.in_(chunk), WebhookEvent.processed.is_(True)
                    )
                ).scalars()
            )
    # Stripe counts the endpoints still to deliver each event to; an event no endpoint waits
    # for (a disabled or deleted endpoint) was missed, not delayed.
    awaited = {
        _event_subscription_id(e)
        for e in events
        if e["id"] not in processed and (e.get("pending_webhooks") or 0) > 0
    }
    return {subscription_id for subscription_id in awaited if subscription_id}


def sync_all(
    gateway: StripeGateway, track: Track | None = None, pending_seconds: int = 300
) -> SyncReport:
    """Every subscription in Stripe, then the rows Stripe did not list, then every summary.

    `track` wraps the stream of listed subscriptions (the CLI's progress bar). Per-row
    failures are collected in the report and the pass goes on; a failed list call stops it,
    since without the whole list the rows Stripe did not list can't be told apart."""
    report = SyncReport()
    started = utcnow()
    outside_transaction()
    if pending_seconds > 0:
        since = int(started.timestamp()) - pending_seconds
        try:
            report.awaited = awaited_subscriptions(gateway, since)
        except Exception as exc:
            report.errors.append(f"listing recent events failed: {describe(exc)}")
    listed_ids: set[str] = set()
    stream: Iterable[StripeDict] = gateway.list_subscriptions()
    iterator = iter(track(stream) if track is not None else stream)
    while True:
        try:
            listed = next(iterator, None)
        except Exception as exc:
            report.errors.append(f"listing subscriptions failed: {describe(exc)}")
            return report
        if listed is None:
            break
        listed_ids.add(listed["id"])
        try:
            sync_listed(gateway, listed, started, report)
        except Exception as exc:
            report.errors.append(f"{listed['id']}: {describe(exc)}")
    for subscription_id in _unlisted_rows(listed_ids):
        try:
            sync_by_id(gateway, subscription_id, report)
        except Exception as exc:
            report.errors.append(f"{subscription_id}: {describe(exc)}")
    refresh_users(_users_to_refresh(), report)
    return report


def _unlisted_rows(listed_ids: set[str]) -> list[str]:
    """Rows Stripe did not list that may still be live (ended ones can't change)."""
    with unit_of_work():
        ids = db.session.execute(
            select(Subscription.id).where(
                or_(Subscription.status.is_(None), Subscription.status.not_in(ENDED_STATUSES))
            )
        ).scalars()
        return [subscription_id for subscription_id in ids if subscription_id not in listed_ids]


def _users_to_refresh() -> list[User]:
    """Users with a subscription, or whose summary claims one."""
    owners = select(Subscription.user_id).where(Subscription.user_id.is_not(None))
    with unit_of_work():
        users = db.session.execute(
            select(User).where(
                or_(
                    User.id.in_(owners),
                    User.stripe_subscription_id.is_not(None),
                    User.subscription_status != "free",
                )
            )
        ).scalars()
        return list(users)


# -- the incremental pass: Stripe's event list since a cursor ----------------------------------

EVENTS_CURSOR = "events_cursor"
# Stripe keeps events for 30 days; a cursor older than this may have missed some.
EVENT_RETENTION_SECONDS = 30 * 86_400


@dataclass
class EventSyncResult:
    applied: int = 0
    duplicates: int = 0
    failures: list[str] = field(default_factory=list)
    cursor: int | None = None
    cursor_too_old: bool = False


def events_cursor() -> int | None:
    with unit_of_work():
        value = read_states(EVENTS_CURSOR).get(EVENTS_CURSOR)
    return int(value) if value is not None else None


def _store_cursor(value: int) -> None:
    with unit_of_work():
        write_state(EVENTS_CURSOR, str(value))


def sync_from_events(gateway: StripeGateway, now: int) -> EventSyncResult:
    """Apply the events Stripe lists since the stored cursor (the `created` second of the last
    event applied; that second is read again and dedupe by id makes the overlap free).

    The cursor stops before the first failure so the next run retries from there."""
    cursor = events_cursor()
    result = EventSyncResult(cursor=cursor)
    if cursor is not None and cursor < now - EVENT_RETENTION_SECONDS:
        result.cursor_too_old = True
    newest = cursor
    for listed in gateway.list_events_after(cursor):
        created = int(listed.get("created") or 0)
        if listed.get("type") not in HANDLED_EVENT_TYPES:
            # Not recorded: webhook_events holds what our endpoint subscribes to, no more.
            if not result.failures:
                newest = max(newest or 0, created)
            continue
        try:
            outcome = record_and_apply(listed, gateway)
        except Exception as exc:
            result.failures.append(f"{listed.get('id')} {listed.get('type')}: {describe(exc)}")
            continue
        if outcome == "duplicate":
            result.duplicates += 1
        else:
            result.applied += 1
        if not result.failures:
            newest = max(newest or 0, created)
    if newest is not None and newest != cursor:
        _store_cursor(newest)
        result.cursor = newest
    return result
