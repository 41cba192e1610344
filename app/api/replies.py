"""Shape database rows into the guide's JSON (times in ms since the epoch)."""

from __future__ import annotations

from typing import Any

from app.api.schemas import MeReply, SubscriptionOut, UserOut
from app.models import Subscription, User


def subscription_out(row: Subscription | None, tier: str) -> SubscriptionOut | None:
    """`tier` is the owner's current tier (the grace policy's answer, not the status alone)."""
    if row is None or row.status is None:
        return None
    return SubscriptionOut(
        id=row.id,
        customerId=row.customer_id,
        status=row.status,
        tier=tier,
        priceId=row.price_id,
        interval=row.plan_interval,
        currentPeriodStart=row.current_period_start,
        currentPeriodEnd=row.current_period_end,
        cancelAtPeriodEnd=row.cancel_at_period_end,
        cancelAt=row.cancel_at,
        canceledAt=row.canceled_at,
        trialEnd=row.trial_end,
    )


def subscription_reply(user: User, row: Subscription | None) -> dict[str, Any]:
    out = subscription_out(row, user.subscription_tier)
    return {"subscription": out.model_dump() if out else None}


def me_reply(
    user: User, row: Subscription | None, live: list[Subscription] | None = None
) -> dict[str, Any]:
    """`live`: the user's live subscriptions; listed in full when there is more than one."""
    several = [subscription_out(sub, user.subscription_tier) for sub in live or []]
    return MeReply(
        user=UserOut(
            id=user.id,
            email=user.email,
            tier=user.subscription_tier,
            status=user.subscription_status,
            stripeCustomerId=user.stripe_customer_id,
        ),
        subscription=subscription_out(row, user.subscription_tier),
        subscriptions=[out for out in several if out] if len(several) > 1 else None,
    ).model_dump()
