"""Changes a user asks for on their own subscription: cancel now, cancel at period end, resume."""

from __future__ import annotations

from enum import Enum

from app.billing.errors import Conflict, NotFound, ProviderRejected
from app.billing.statuses import ENDED_STATUSES
from app.billing.subscriptions.reads import apply_read
from app.billing.subscriptions.summary import live_subscriptions, owned_subscription
from app.db import outside_transaction, unit_of_work
from app.models import Subscription, User, utcnow
from app.stripe.gateway import StripeDict, StripeGateway


class Change(Enum):
    CANCEL_NOW = "cancel_now"
    CANCEL_AT_PERIOD_END = "cancel_at_period_end"
    RESUME = "resume"


def changeable_subscription(user: User, subscription_id: str | None) -> Subscription:
    if subscription_id is None:
        live = live_subscriptions(user.id)
        if len(live) > 1:
            # Picking one would leave the other billing: the caller must say which.
            raise Conflict(
                "You have more than one subscription; say which one (subscriptionId).",
                code="multiple_subscriptions",
                details={"subscriptionIds": [row.id for row in live]},
            )
    row = owned_subscription(user, subscription_id)
    if row is None or not row.has_state:
        raise NotFound("No such subscription.", code="subscription_not_found")
    if row.has_ended:
        raise Conflict("This subscription has already ended.", code="subscription_ended")
    return row


def change_subscription(
    gateway: StripeGateway, user: User, subscription_id: str | None, change: Change
) -> Subscription:
    """Ask Stripe for the change and store the subscription it answers with (the truth now;
    its webhooks will follow and be judged against it)."""
    row = changeable_subscription(user, subscription_id)
    outside_transaction()
    asked_at = utcnow()
    try:
        updated = _ask_stripe(gateway, row.id, change)
    except ProviderRejected as exc:
        updated = _settle_rejection(gateway, row.id, change, exc)
    # A webhook for a later change may land between Stripe's answer and this write.
    with unit_of_work():
        return apply_read(gateway, updated, read_started=asked_at)


def _settle_rejection(
    gateway: StripeGateway, subscription_id: str, change: Change, rejection: ProviderRejected
) -> StripeDict:
    """Stripe refused the change. A refusal can be the echo of our own earlier success (the
    SDK retried a DELETE whose answer was lost and heard "already canceled"), or mean that the
    subscription ended without our knowing yet: read the subscription and judge by its state."""
    if rejection.missing:
        raise rejection
    current = gateway.retrieve_subscription(subscription_id)
    if current.get("status") not in ENDED_STATUSES:
        raise rejection
    if change is Change.CANCEL_NOW:
        return current  # what was asked for is done
    with unit_of_work():
        apply_read(gateway, current, read_started=utcnow())
    raise Conflict("This subscription has already ended.", code="subscription_ended")


def _ask_stripe(gateway: StripeGateway, subscription_id: str, change: Change) -> StripeDict:
    if change is Change.CANCEL_NOW:
        return gateway.cancel_subscription_now(subscription_id)
    return gateway.set_cancel_at_period_end(subscription_id, change is Change.CANCEL_AT_PERIOD_END)
