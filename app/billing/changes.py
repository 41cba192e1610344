"""Changes a user asks for on their own subscription: cancel now, cancel at period end, resume."""

from __future__ import annotations

from enum import Enum

from app.billing.policy import ENDED_STATUSES
from app.billing.subscriptions import owned_subscription
from app.billing.sync import apply_read
from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import Subscription, User, utcnow
from app.stripe_gateway import StripeDict, StripeGateway


class Change(Enum):
    CANCEL_NOW = "cancel_now"
    CANCEL_AT_PERIOD_END = "cancel_at_period_end"
    RESUME = "resume"


def changeable_subscription(user: User, subscription_id: str | None) -> Subscription:
    row = owned_subscription(user, subscription_id)
    if row is None or row.status is None:
        raise NotFound("No such subscription.", code="subscription_not_found")
    if row.status in ENDED_STATUSES:
        raise Conflict("This subscription has already ended.", code="subscription_ended")
    return row


def change_subscription(
    gateway: StripeGateway, user: User, subscription_id: str | None, change: Change
) -> Subscription:
    """Ask Stripe for the change and store the subscription it answers with (the truth now;
    its webhooks will follow and be judged against it)."""
    row = changeable_subscription(user, subscription_id)
    db.session.commit()  # no transaction held across the Stripe call
    asked_at = utcnow()
    updated = _ask_stripe(gateway, row.id, change)
    # A webhook for a later change may land between Stripe's answer and this write.
    row = apply_read(gateway, updated, read_started=asked_at)
    db.session.commit()
    return row


def _ask_stripe(gateway: StripeGateway, subscription_id: str, change: Change) -> StripeDict:
    if change is Change.CANCEL_NOW:
        return gateway.cancel_subscription_now(subscription_id)
    return gateway.set_cancel_at_period_end(subscription_id, change is Change.CANCEL_AT_PERIOD_END)
