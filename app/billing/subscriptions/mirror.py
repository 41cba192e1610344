"""The subscription fields we mirror, declared once: the subscription column, the user column
that mirrors it (the summary on `users` other readers use) and the JSON name in replies.

`copy_to_user` (the summary), `reply_fields` (GET /api/subscription, /api/me, cancel/resume)
and sync's change report all read this table, so a new mirrored field is one line here plus
its column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.billing.accounts.rows import AnySubscription, AnyUser
from app.models import Subscription, User


@dataclass(frozen=True)
class Mirrored:
    column: str  # on subscriptions
    user_column: str | None  # on users (None: not mirrored there)
    reply: str  # in the JSON reply


MIRRORED: tuple[Mirrored, ...] = (
    Mirrored("id", "stripe_subscription_id", "id"),
    Mirrored("customer_id", None, "customerId"),
    Mirrored("status", "subscription_status", "status"),
    Mirrored("price_id", "stripe_price_id", "priceId"),
    Mirrored("plan_interval", "plan_interval", "interval"),
    Mirrored("quantity", "quantity", "quantity"),
    Mirrored("current_period_start", "current_period_start", "currentPeriodStart"),
    Mirrored("current_period_end", "current_period_end", "currentPeriodEnd"),
    Mirrored("cancel_at_period_end", "cancel_at_period_end", "cancelAtPeriodEnd"),
    Mirrored("cancel_at", "cancel_at", "cancelAt"),
    Mirrored("canceled_at", "canceled_at", "canceledAt"),
    Mirrored("trial_end", "trial_end", "trialEnd"),
)

# What a user row says when it mirrors no subscription.
NO_SUBSCRIPTION: dict[str, Any] = {"subscription_status": "free", "cancel_at_period_end": False}

_USER_MIRROR = tuple(m.user_column for m in MIRRORED if m.user_column)
# The user columns sync reports changes to: the customer link, the mirror and the tier.
USER_SUMMARY_COLUMNS = (
    "stripe_customer_id",
    *_USER_MIRROR[:2],
    "subscription_tier",
    *_USER_MIRROR[2:],
)
# The subscription columns sync reports changes to.
_COLUMNS = tuple(m.column for m in MIRRORED if m.column != "id")
SUBSCRIPTION_COLUMNS = ("user_id", *_COLUMNS[:-1], "ended_at", _COLUMNS[-1])


def summary_values(subscription: AnySubscription | None) -> dict[str, Any]:
    """The user columns mirroring `subscription` (or saying there is none)."""
    values: dict[str, Any] = {}
    for field in MIRRORED:
        if field.user_column is not None:
            values[field.user_column] = (
                getattr(subscription, field.column) if subscription is not None else None
            )
    if subscription is None:
        values.update(NO_SUBSCRIPTION)
    else:
        values["subscription_status"] = subscription.status or "free"
        values["cancel_at_period_end"] = bool(subscription.cancel_at_period_end)
    return values


# The subscription paid again (a retry that worked, a new card in the portal) or is over: a
# payment action (dunning, app/billing/invoices/store.py) no longer applies.
RECOVERED_STATUSES = frozenset({"active", "trialing", "canceled", "incomplete_expired"})
NO_PAYMENT_ACTION: dict[str, Any] = dict.fromkeys(
    ("payment_action", "payment_action_invoice", "payment_action_url", "payment_action_since")
)


def summary_changes(user: AnyUser, subscription: AnySubscription | None) -> dict[str, Any]:
    """The user columns that don't mirror `subscription` yet, with the values they should hold
    (and the payment action cleared once the subscription recovered: no statement of its own)."""
    changes = {
        name: value
        for name, value in summary_values(subscription).items()
        if getattr(user, name) != value
    }
    if changes and user.payment_action is not None:
        status = subscription.status if subscription is not None else None
        if status is None or status in RECOVERED_STATUSES:
            changes.update(NO_PAYMENT_ACTION)
    return changes


def copy_to_user(user: User, subscription: Subscription | None) -> None:
    for name, value in summary_changes(user, subscription).items():
        setattr(user, name, value)


def reply_fields(subscription: AnySubscription) -> dict[str, Any]:
    return {field.reply: getattr(subscription, field.column) for field in MIRRORED}
