"""Starting a checkout and fulfilling a completed one (from the redirect or the webhook)."""

from __future__ import annotations

from sqlalchemy import update

from app.billing.policy import LIVE_STATUSES
from app.billing.stripe_objects import object_id
from app.billing.subscriptions import (
    apply_subscription,
    attach_subscription_id,
    current_subscription,
    link_customer,
    refresh_user_summary,
)
from app.billing.users import get_or_create_user
from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import User
from app.stripe_gateway import StripeDict, StripeGateway


def ensure_customer(gateway: StripeGateway, user: User) -> str:
    """The user's Stripe customer, created once (Stripe dedupes racing creates by the key)."""
    if user.stripe_customer_id:
        return user.stripe_customer_id
    db.session.commit()  # hold no transaction (nor SQLite's write lock) across a Stripe call
    customer = gateway.create_customer(user_id=user.id, email=user.email)
    db.session.execute(
        update(User)
        .where(User.id == user.id, User.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer["id"])
    )
    db.session.commit()
    db.session.refresh(user)
    return user.stripe_customer_id or customer["id"]


def start_checkout(
    gateway: StripeGateway,
    user: User,
    *,
    price_id: str,
    success_url: str,
    cancel_url: str,
    metadata: dict[str, str],
) -> StripeDict:
    live = current_subscription(user)
    if live is not None and live.status in LIVE_STATUSES:
        raise Conflict(
            "You already have a subscription. Manage it in the billing portal.",
            code="subscription_exists",
            details={"portal": "/api/create-portal-session", "subscriptionId": live.id},
        )
    customer_id = ensure_customer(gateway, user)
    db.session.commit()
    return gateway.create_checkout_session(
        user_id=user.id,
        customer_id=customer_id,
        price_id=price_id,
        success_url=success_url,
        cancel_url=cancel_url,
        metadata=metadata,
    )


def session_belongs_to(session: StripeDict, user: User) -> bool:
    owner = session.get("client_reference_id") or (session.get("metadata") or {}).get("userId")
    if owner:
        return bool(owner == user.id)
    customer = object_id(session.get("customer"))
    return customer is not None and customer == user.stripe_customer_id


def fulfil_checkout_session(session: StripeDict, *, user: User | None = None) -> User | None:
    """Link the buyer to their customer and subscription; idempotent.

    From the redirect the session comes with its subscription expanded, so its state is applied
    at once; from the webhook it carries only ids and the subscription's own events bring the
    state."""
    if user is None:
        user_id = session.get("client_reference_id") or (session.get("metadata") or {}).get(
            "userId"
        )
        if not user_id:
            return None
        user = get_or_create_user(user_id)
    elif not session_belongs_to(session, user):
        raise NotFound("No such checkout session.", code="checkout_session_not_found")
    if session.get("status") != "complete":
        return user
    link_customer(user, object_id(session.get("customer")))
    subscription = session.get("subscription")
    if isinstance(subscription, dict):
        apply_subscription(subscription)
    elif isinstance(subscription, str):
        attach_subscription_id(user, subscription)
    refresh_user_summary(user)
    return user
