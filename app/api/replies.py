"""Shape database rows into the API's published JSON (camelCase, times in ms since the epoch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.api.schemas import SubscriptionOut
from app.billing.subscriptions.service import AnySubscription, AnyUser, reply_fields

# The reply's keys in the documented order (SubscriptionOut); built from our own rows, so they
# are not validated again on every read.
SUBSCRIPTION_KEYS = tuple(SubscriptionOut.model_fields)


def subscription_out(row: AnySubscription | None, tier: str) -> dict[str, Any] | None:
    """`tier` is the owner's current tier (the grace policy's answer, not the status alone)."""
    if row is None or not row.has_state:
        return None
    values = {
        **reply_fields(row),
        "tier": tier,
        "trialEndsAt": row.trial_end if row.status == "trialing" else None,
        # Only the warning for the trial still running (a later trial would get its own).
        "trialWillEndAt": row.trial_will_end_at if row.status == "trialing" else None,
    }
    return {key: values[key] for key in SUBSCRIPTION_KEYS}


def subscription_reply(user: AnyUser, row: AnySubscription | None) -> dict[str, Any]:
    return {"subscription": subscription_out(row, user.subscription_tier)}


def me_reply(
    user: AnyUser, row: AnySubscription | None, live: Sequence[AnySubscription] | None = None
) -> dict[str, Any]:
    """`live`: the user's live subscriptions; listed in full when there is more than one."""
    several = [subscription_out(sub, user.subscription_tier) for sub in live or []]
    return {
        "user": {
            "id": user.id,
            "email": user.email,
            "tier": user.subscription_tier,
            "status": user.subscription_status,
            "stripeCustomerId": user.stripe_customer_id,
        },
        "subscription": subscription_out(row, user.subscription_tier),
        "action": payment_action_out(user),
        "subscriptions": [out for out in several if out] if len(several) > 1 else None,
    }


def payment_action_out(user: AnyUser) -> dict[str, Any] | None:
    if user.payment_action is None or user.payment_action_invoice is None:
        return None
    return {
        "type": user.payment_action,
        "invoiceId": user.payment_action_invoice,
        "hostedInvoiceUrl": user.payment_action_url,
        "since": user.payment_action_since or 0,
    }
