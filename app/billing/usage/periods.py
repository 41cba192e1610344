"""Keep a user's cached plan and usage period in step with what they are entitled to.

The user row caches `subscription_tier`, `generations_limit` and the usage period that
`generations_used` counts in. They are written when the subscription changes (from
`settle_user` in summary.py) and, lazily, on the first read or consume after a change that only time
makes (a free month rolling over, a pending cancel reaching its date):

- free: the period is a month from sign-up; a period that is over starts the next one at 0.
- paid: the period is the subscription's; only Stripe's renewal (a paid `subscription_cycle`
  invoice) starts the next one at 0, so a late or failed renewal never grants a free reset.
- a change of plan keeps what was used in a period that is still running (downgrading applies
  the free limit to it; upgrading lifts the limit at once) and starts from 0 if it was over.

Every reset writes a ledger row. This module must not import `app.billing.subscriptions.summary`
(which calls it), so it receives the deciding subscription instead of looking it up.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import func, insert, select, update

from app.billing.accounts.rows import AnySubscription, AnyUser
from app.billing.plans import current_plans
from app.billing.time import monthly_period_containing, ms_from_datetime
from app.billing.usage.entitlements import Entitlements, SubscriptionState, entitlements_for
from app.extensions import db
from app.models import Subscription, UsageLedgerEntry, User, utcnow
from app.stripe.objects import invoice_subscription_id, object_id

log = logging.getLogger(__name__)

StripeDict = dict[str, Any]
Period = tuple[int, int]


def entitlements_now(subscription: AnySubscription | None, now: int) -> Entitlements:
    return entitlements_for(
        SubscriptionState.of(subscription), current_plans(), now, current_app.config
    )


def settle_entitlements(
    user: AnyUser, subscription: AnySubscription | None, now: int
) -> Entitlements:
    """Write the user's plan, limit and period if they are out of date; return what applies.

    The common case (nothing to change) reads only; a change locks the user row and decides
    again on the fresh row, so concurrent requests settle it once. `user` may be a plain row
    (app/billing/accounts/rows.py): only the locked ORM row is written."""
    entitlements = entitlements_now(subscription, now)
    if _is_settled(user, entitlements, subscription, now):
        return entitlements
    locked = lock_user(user.id)
    if locked is not None and not _is_settled(locked, entitlements, subscription, now):
        _settle(locked, entitlements, subscription, now)
    return entitlements


def settle_new_user_entitlements(
    user: User, subscription: AnySubscription | None, now: int
) -> Entitlements:
    """`settle_entitlements` for a user row this transaction inserted: no other transaction
    can see or change it before we commit, so the lock and re-read would only return the row
    we hold. The plan, limit and period are set on it and flushed with the mirror's columns."""
    entitlements = entitlements_now(subscription, now)
    if not _is_settled(user, entitlements, subscription, now):
        _settle(user, entitlements, subscription, now)
    return entitlements


def is_settled(user: AnyUser, subscription: AnySubscription | None, now: int) -> bool:
    """True when `settle_entitlements` would write nothing: the user's cached plan, limit and
    usage period are what `subscription` entitles them to at `now`."""
    return _is_settled(user, entitlements_now(subscription, now), subscription, now)


def settled_entitlements(
    user: AnyUser, subscription: AnySubscription | None, now: int
) -> Entitlements | None:
    """What applies, when `settle_entitlements` would write nothing; None when it would."""
    entitlements = entitlements_now(subscription, now)
    return entitlements if _is_settled(user, entitlements, subscription, now) else None


def lock_user(user_id: str) -> User | None:
    """The user row, locked until commit (PostgreSQL) and re-read: another transaction may
    have changed it since it was loaded.

    FOR NO KEY UPDATE (what an UPDATE of these columns takes anyway) rather than FOR UPDATE:
    it does not wait for the key-share locks that inserting a ledger row takes on its user, so
    a consume that has claimed its key never waits on one that has not."""
    db.session.flush()
    return db.session.execute(
        select(User)
        .where(User.id == user_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _is_settled(
    user: AnyUser, entitlements: Entitlements, subscription: AnySubscription | None, now: int
) -> bool:
    return (
        _next_period(user, entitlements, subscription, now) is None
        and user.subscription_tier == entitlements.tier
        and user.generations_limit == entitlements.limit
    )


def _period_over(user: AnyUser, now: int) -> bool:
    return user.usage_period_end is None or user.usage_period_end <= now


def _next_period(
    user: AnyUser, entitlements: Entitlements, subscription: AnySubscription | None, now: int
) -> Period | None:
    """The period the user should move to now, or None to stay in the stored one."""
    plan_changed = user.subscription_tier != entitlements.tier
    if entitlements.access.paid:
        if not plan_changed and user.usage_period_end is not None:
            return None
        if (
            subscription is not None
            and subscription.current_period_start is not None
            and subscription.current_period_end is not None
        ):
            return subscription.current_period_start, subscription.current_period_end
        return free_period(user, now)
    if plan_changed or _period_over(user, now):
        return free_period(user, now)
    return None


def free_period(user: AnyUser, now: int) -> Period:
    """The month from sign-up that contains `now`."""
    anchor = ms_from_datetime(user.created_at) if user.created_at is not None else now
    return monthly_period_containing(anchor, now)


def _settle(
    user: User, entitlements: Entitlements, subscription: AnySubscription | None, now: int
) -> None:
    period = _next_period(user, entitlements, subscription, now)
    plan_changed = user.subscription_tier != entitlements.tier
    user.subscription_tier = entitlements.tier
    user.generations_limit = entitlements.limit
    if period is None:
        return
    if _period_over(user, now):
        _reset(user, period, reason="plan_change" if plan_changed else "free_period")
    else:
        user.usage_period_start, user.usage_period_end = period


def _reset(user: User, period: Period, *, reason: str) -> None:
    cleared = user.generations_used
    user.generations_used = 0
    user.usage_period_start, user.usage_period_end = period
    if cleared:
        db.session.add(UsageLedgerEntry(**_reset_entry(user, cleared, period, reason)))


def _reset_entry(user: Any, cleared: int, period: Period, reason: str) -> dict[str, Any]:
    """The ledger row of a reset that cleared `cleared` generations."""
    return {
        "user_id": user.id,
        "kind": "reset",
        "count": cleared,
        "result": "reset",
        "reason": reason,
        "tier": user.subscription_tier,
        "generations_used": 0,
        "generations_limit": user.generations_limit,
        "period_start": period[0],
        "period_end": period[1],
    }


# -- renewal ---------------------------------------------------------------------------------------


def renewal_period(invoice: StripeDict) -> Period | None:
    """The new period a renewal invoice bills, from its subscription lines (not the invoice's
    own period_start/period_end, which for a renewal is the period that just ended)."""
    periods = []
    for line in (invoice.get("lines") or {}).get("data") or []:
        details = (line.get("parent") or {}).get("subscription_item_details") or {}
        period = line.get("period") or {}
        start, end = period.get("start"), period.get("end")
        if details.get("proration") or not isinstance(start, int) or not isinstance(end, int):
            continue
        periods.append((start * 1000, end * 1000))
    return max(periods, key=lambda p: p[1]) if periods else None


def reset_usage_for_renewal(invoice: StripeDict) -> None:
    """A paid renewal invoice starts a new billing period: usage starts again from 0.

    Idempotent and safe out of order: a period that does not start after the stored one is
    ignored, so a replayed or late invoice never resets twice. Core SQL, as the rest of the
    webhook path: the owner found and locked in one SELECT, then the reset and its ledger row."""
    if invoice.get("billing_reason") != "subscription_cycle":
        return
    period = renewal_period(invoice)
    owner = _locked_invoice_owner(invoice) if period is not None else None
    if period is None or owner is None:
        log.warning("renewal invoice %s: no period or no user; usage not reset", invoice.get("id"))
        return
    if owner.usage_period_start is not None and owner.usage_period_start >= period[0]:
        return
    db.session.execute(
        update(User.__table__)
        .where(User.__table__.c.id == owner.id)
        .values(
            generations_used=0,
            usage_period_start=period[0],
            usage_period_end=period[1],
            updated_at=utcnow(),
        )
    )
    if owner.generations_used:
        entry = _reset_entry(owner, owner.generations_used, period, "renewal")
        db.session.execute(insert(UsageLedgerEntry.__table__).values(entry))


def _locked_invoice_owner(invoice: StripeDict) -> Any:
    """The user an invoice bills (through its subscription's row, else its customer), locked
    as `lock_user` does; None if we know no such user."""
    users = User.__table__.c
    subscription_id = invoice_subscription_id(invoice)
    customer_id = object_id(invoice.get("customer"))
    by_subscription = select(Subscription.__table__.c.user_id).where(
        Subscription.__table__.c.id == subscription_id
    )
    by_customer = select(users.id).where(users.stripe_customer_id == customer_id)
    owner_id = func.coalesce(by_subscription.scalar_subquery(), by_customer.scalar_subquery())
    return db.session.execute(
        select(
            users.id,
            users.generations_used,
            users.subscription_tier,
            users.generations_limit,
            users.usage_period_start,
        )
        .where(users.id == owner_id)
        .with_for_update(key_share=True)
    ).first()
