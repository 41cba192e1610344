"""Apply a Stripe subscription object to our tables.

The state comes from the object itself: status, price and interval from its first item, the
period from that item (the current API has no period on the subscription), cancellation and
trial fields. Events can arrive late, twice or out of order, so each row remembers the
`created` time of the newest event applied to it; see `apply_subscription`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from app import audit
from app.billing.entitlements import past_due_since
from app.billing.ordering import Verdict, judge_event
from app.billing.policy import ENDED_STATUSES, LIVE_STATUSES
from app.billing.stripe_objects import subscription_fields
from app.billing.times import now_ms
from app.billing.usage_periods import settle_user
from app.billing.users import get_or_create_user, user_by_customer
from app.database import insert_or_ignore
from app.extensions import db
from app.models import Subscription, User
from app.safe_text import for_log

log = logging.getLogger(__name__)

StripeDict = dict[str, Any]
Reread = Callable[[str], StripeDict]


def subscription_row_for_update(subscription_id: str) -> Subscription:
    insert_or_ignore(Subscription, {"id": subscription_id})
    row = db.session.execute(
        select(Subscription)
        .where(Subscription.id == subscription_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    return row


def apply_subscription(
    subscription: StripeDict, *, event_created: int | None = None, reread: Reread | None = None
) -> Subscription:
    """Store `subscription` unless what we hold is newer.

    `event_created` is the `created` of the event carrying the object; None means a fresh API
    read, which is the truth and always applies (that is how `flask billing sync` repairs any
    row). An event's object is judged by `judge_event` (see app/billing/ordering.py): applied,
    skipped as older than what we hold, or, when the order can't be told, replaced by a re-read
    through `reread`.
    """
    row = subscription_row_for_update(subscription["id"])
    if event_created is None and _would_revive(row, subscription):
        # Stripe never revives an ended subscription: a read showing it live was made before
        # the end we already hold (its answer came late). Deleted stays deleted.
        log.warning("read of %s older than its end; ignored", row.id)
        return row
    was_live = row.status in LIVE_STATUSES
    if event_created is not None:
        verdict = judge_event(row, subscription, event_created)
        if verdict is Verdict.SKIP:
            return row
        if verdict is Verdict.REREAD:
            if reread is None:
                log.warning("event for %s may be stale and no re-read is possible", row.id)
                return row
            log.info("event for %s is as old as our state and differs; re-reading", row.id)
            subscription = reread(row.id)
    _copy_subscription_fields(row, subscription)
    if event_created is not None:
        row.last_event_created = max(row.last_event_created or 0, event_created)
    previous_owner = row.user_id
    user = _owner_of(row, subscription)
    if user is not None:
        row.user_id = user.id
        link_customer(user, row.customer_id)
        refresh_user_summary(user)
        if row.status in LIVE_STATUSES and not was_live:
            _report_duplicates(user)
    if previous_owner and (user is None or previous_owner != user.id):
        before = db.session.get(User, previous_owner)
        if before is not None:
            refresh_user_summary(before)
    return row


def _would_revive(row: Subscription, subscription: StripeDict) -> bool:
    return row.status in ENDED_STATUSES and subscription.get("status") not in ENDED_STATUSES


def live_subscriptions(user_id: str) -> list[Subscription]:
    """The user's live subscriptions, the deciding one first (see `current_subscription`)."""
    rows = (
        db.session.execute(
            select(Subscription).where(
                Subscription.user_id == user_id, Subscription.status.in_(LIVE_STATUSES)
            )
        )
        .scalars()
        .all()
    )
    return sorted(rows, key=_precedence, reverse=True)


def _report_duplicates(user: User) -> None:
    """One live subscription per user: a second one means the user pays twice. Checkout makes
    it nearly impossible (app/billing/checkout.py); if it happens anyway, say so loudly. The
    policy for it runs in `flask billing check` (README, Reliability)."""
    live = live_subscriptions(user.id)
    if len(live) > 1:
        log.error(
            "user %s has %d live subscriptions: %s (see `flask billing check`)",
            user.id,
            len(live),
            ", ".join(row.id for row in live),
        )


def _copy_subscription_fields(row: Subscription, subscription: StripeDict) -> None:
    fields = subscription_fields(subscription)
    fields["customer_id"] = fields["customer_id"] or row.customer_id
    for name, value in fields.items():
        setattr(row, name, value)
    row.past_due_since = past_due_since(row.status, row.past_due_since, now_ms())
    row.stripe_created = subscription.get("created") or row.stripe_created


def _owner_of(row: Subscription, subscription: StripeDict) -> User | None:
    """The user a subscription belongs to, anchored to what we stored: the user linked to its
    customer, else the owner we already recorded. `metadata.userId` only names the owner of a
    subscription we can't place otherwise, and never moves one: metadata can be edited in the
    Dashboard or by anyone holding the key, the customer link is ours."""
    claimed = (subscription.get("metadata") or {}).get("userId")
    claimed = claimed if isinstance(claimed, str) and claimed else None
    anchored = user_by_customer(row.customer_id) if row.customer_id else None
    if anchored is None and row.user_id:
        anchored = db.session.get(User, row.user_id)
    if anchored is not None:
        if claimed is not None and claimed != anchored.id:
            flag_ownership_mismatch(row.id, claimed=claimed, owner=anchored.id)
        return anchored
    if claimed is None:
        return None
    user = get_or_create_user(claimed)
    if user.stripe_customer_id and row.customer_id and user.stripe_customer_id != row.customer_id:
        # The named user pays through another customer: not theirs to adopt.
        flag_ownership_mismatch(row.id, claimed=claimed, owner=None)
        return None
    return user


def flag_ownership_mismatch(stripe_object: str, *, claimed: str, owner: str | None) -> None:
    log.warning(
        "ownership mismatch on %s: metadata.userId=%s, stored owner=%s; keeping the stored owner",
        for_log(stripe_object),
        for_log(claimed),
        for_log(owner),
    )
    audit.record(
        "webhook.ownership_mismatch",
        "flagged",
        user_id=owner,
        stripe_object=stripe_object,
        detail=f"metadata.userId={claimed}",
    )


def link_customer(user: User, customer_id: str | None) -> None:
    """Remember the user's Stripe customer and adopt subscriptions that arrived before we knew."""
    if not customer_id:
        return
    if user.stripe_customer_id is None:
        holder = db.session.execute(
            select(User.id).where(User.stripe_customer_id == customer_id)
        ).scalar_one_or_none()
        if holder is None:
            user.stripe_customer_id = customer_id
            db.session.flush()
    if user.stripe_customer_id != customer_id:
        return
    orphans = db.session.execute(
        select(Subscription).where(
            Subscription.customer_id == customer_id, Subscription.user_id.is_(None)
        )
    ).scalars()
    for orphan in orphans:
        orphan.user_id = user.id


def attach_subscription_id(user: User, subscription_id: str) -> None:
    """A checkout told us the id before the subscription's own events arrived."""
    row = subscription_row_for_update(subscription_id)
    if row.user_id is None:
        row.user_id = user.id
    if row.customer_id is None:
        row.customer_id = user.stripe_customer_id


def current_subscription(user: User) -> Subscription | None:
    """The subscription that decides the user's state: a live one first, else the newest."""
    rows = (
        db.session.execute(
            select(Subscription).where(
                Subscription.user_id == user.id, Subscription.status.is_not(None)
            )
        )
        .scalars()
        .all()
    )
    if not rows:
        return None
    return max(rows, key=_precedence)


def _precedence(row: Subscription) -> tuple[bool, int, str]:
    """Live before ended, then the newest; the id settles a tie (two created in one second), so
    every reader picks the same row whatever order the database returns them in."""
    return (row.status in LIVE_STATUSES, row.stripe_created or 0, row.id)


def refresh_user_summary(user: User) -> None:
    """Mirror the deciding subscription onto the user row (the guide's columns)."""
    db.session.flush()
    sub = current_subscription(user)
    user.stripe_subscription_id = sub.id if sub else None
    user.subscription_status = (sub.status or "free") if sub else "free"
    user.stripe_price_id = sub.price_id if sub else None
    user.plan_interval = sub.plan_interval if sub else None
    user.current_period_start = sub.current_period_start if sub else None
    user.current_period_end = sub.current_period_end if sub else None
    user.cancel_at_period_end = bool(sub and sub.cancel_at_period_end)
    user.cancel_at = sub.cancel_at if sub else None
    user.canceled_at = sub.canceled_at if sub else None
    user.trial_end = sub.trial_end if sub else None
    # The tier, the generation limit and the usage period follow the grace policy and plans.
    settle_user(user, sub, now_ms())


def owned_subscription(user: User, subscription_id: str | None) -> Subscription | None:
    """The caller's subscription by id (None if it is not theirs), or their current one."""
    if subscription_id is None:
        return current_subscription(user)
    row = db.session.get(Subscription, subscription_id)
    return row if row is not None and row.user_id == user.id else None
