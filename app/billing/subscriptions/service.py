"""What the API and the CLI ask of subscriptions: start a checkout and fulfil it from the
redirect, open the billing portal, cancel or resume, and a user's standing (refreshed from
Stripe on demand).

Each call owns its transactions and its Stripe calls (`app/db.py`: none is open across a Stripe
call); the routes only parse, authorize and shape the reply."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from app.billing.accounts.rows import AnySubscription as AnySubscription
from app.billing.accounts.rows import AnyUser as AnyUser
from app.billing.accounts.rows import UserRow
from app.billing.accounts.store import Standing as Standing
from app.billing.accounts.store import lock_user, settled_standing
from app.billing.errors import NotFound, ProviderRejected
from app.billing.plans import Catalog, current_plans, ensure_prices
from app.billing.redirects import default_redirect, ensure_allowed_url
from app.billing.subscriptions import checkout
from app.billing.subscriptions.changes import Change, change_subscription
from app.billing.subscriptions.mirror import reply_fields as reply_fields
from app.billing.subscriptions.plan_change import (
    Preview,
    change_plan,
    preview_change,
    seats_allowed,
)
from app.billing.subscriptions.summary import (
    current_subscription,
    deciding_subscription,
    live_among,
    live_subscriptions,
)
from app.billing.subscriptions.sync import sync_user
from app.billing.time import now_ms
from app.billing.usage.periods import settle_entitlements
from app.db import commit_if_written, outside_transaction, retry_on_deadlock, unit_of_work
from app.extensions import db
from app.models import Subscription, User, utcnow
from app.stripe.gateway import CheckoutTrial, StripeDict, current_gateway
from app.stripe.objects import object_id


@dataclass(frozen=True)
class CheckoutView:
    """A Checkout session as the API shows it (ids whether Stripe expanded them or not)."""

    id: str
    url: str | None
    status: str | None
    customer_id: str | None
    subscription_id: str | None
    payment_status: str | None
    price_id: str | None = None  # the price it sells, when we made it

    @classmethod
    def of(cls, session: StripeDict, price_id: str | None = None) -> CheckoutView:
        return cls(
            id=str(session["id"]),
            url=session.get("url"),
            status=session.get("status"),
            customer_id=object_id(session.get("customer")),
            subscription_id=object_id(session.get("subscription")),
            payment_status=session.get("payment_status"),
            price_id=price_id,
        )


def start_checkout(
    user: User,
    *,
    price_id: str | None,
    plan: str | None,
    success_url: str | None,
    cancel_url: str | None,
    metadata: dict[str, str],
    quantity: int | None = None,
    promotion_code: str | None = None,
) -> CheckoutView:
    """A Checkout session for the price a `priceId` or a `plan` names (only configured prices
    can be bought), returning to our own front end only; the seats within the plan's bounds,
    and the plan's trial for a first subscription."""
    config = current_app.config
    ensure_prices()  # prices given by lookup key: read now if not yet (503 while Stripe can't)
    price = Catalog.from_config(config).resolve(price_id=price_id, plan=plan)
    bought = current_plans().paid_plan_for(price, config)
    seats = quantity if quantity is not None else bought.min_seats
    seats_allowed(bought, seats)
    trial = (
        CheckoutTrial(bought.trial_days, bought.trial_requires_card, bought.trial_end_behavior)
        if bought.trial_days
        else None
    )
    origins = config["FRONTEND_URLS"]
    session = checkout.start_checkout(
        current_gateway(),
        user,
        price_id=price,
        success_url=ensure_allowed_url(
            success_url or default_redirect(config, "success"), origins, field="successUrl"
        ),
        cancel_url=ensure_allowed_url(
            cancel_url or default_redirect(config, "cancel"), origins, field="cancelUrl"
        ),
        metadata=metadata,
        quantity=seats,
        trial=trial,
        promotion_code=promotion_code,
        serialising=checkout.Serialising.from_config(config),
    )
    return CheckoutView.of(session, price)


def fulfil_from_redirect(user: User, session_id: str) -> CheckoutView:
    """The success page's read of a session: 404 unless it is the caller's; fulfilled here too,
    since the webhook may be late (applying twice is harmless)."""
    gateway = current_gateway()
    outside_transaction()
    read_started = utcnow()
    try:
        session = gateway.retrieve_checkout_session(session_id)
    except ProviderRejected as exc:
        if exc.missing:  # the same answer as another user's session: no existence oracle
            raise NotFound("No such checkout session.", code="checkout_session_not_found") from exc
        raise

    def fulfil() -> None:
        with unit_of_work():
            lock_user(user.id)  # the lock order everywhere: the user, then the subscription
            checkout.fulfil_checkout_session(
                session, user=user, gateway=gateway, read_started=read_started
            )

    # The success page loaded twice racing the purchase's webhooks: a deadlock's victim is
    # run again once, then answered 503 `retry` (app/errors.py), never "database down".
    retry_on_deadlock(fulfil)
    return CheckoutView.of(session)


def open_portal(user: User, *, customer_id: str | None, return_url: str | None) -> str:
    """The billing portal's URL for the caller's own customer."""
    own = user.stripe_customer_id
    if own is None or (customer_id is not None and customer_id != own):
        raise NotFound("No such customer.", code="customer_not_found")
    config = current_app.config
    back = ensure_allowed_url(
        return_url or default_redirect(config, "return"), config["FRONTEND_URLS"], field="returnUrl"
    )
    outside_transaction()
    return str(current_gateway().create_portal_session(customer_id=own, return_url=back)["url"])


@dataclass(frozen=True)
class Changed:
    """A change's outcome: the subscription and its owner as stored after it (the reply is
    built from these, never from the user loaded before the change: a webhook applied
    meanwhile may have settled the user already, leaving this request nothing to write)."""

    user: User
    subscription: Subscription


def cancel(user: User, subscription_id: str | None, *, immediately: bool) -> Changed:
    change = Change.CANCEL_NOW if immediately else Change.CANCEL_AT_PERIOD_END
    return _changed(change_subscription(current_gateway(), user, subscription_id, change))


def resume(user: User, subscription_id: str | None) -> Changed:
    return _changed(change_subscription(current_gateway(), user, subscription_id, Change.RESUME))


def _changed(row: Subscription) -> Changed:
    owner = db.session.get(User, row.user_id, populate_existing=True) if row.user_id else None
    if owner is None:  # change_subscription only changes a subscription the caller owns
        raise NotFound("No such subscription.", code="subscription_not_found")
    return Changed(owner, row)


def preview_plan_change(
    user: User, *, subscription_id: str | None, plan: str | None, quantity: int | None
) -> Preview:
    return preview_change(
        current_gateway(), user, subscription_id=subscription_id, plan=plan, quantity=quantity
    )


def change_plan_or_seats(
    user: User,
    *,
    subscription_id: str | None,
    plan: str | None,
    quantity: int | None,
    proration_date: int | None,
) -> Subscription:
    return change_plan(
        current_gateway(),
        user,
        subscription_id=subscription_id,
        plan=plan,
        quantity=quantity,
        proration_date=proration_date,
    )


def standing(caller: AnyUser, load_user: Callable[[], User], *, refresh: bool) -> Standing:
    """The caller, their deciding subscription and live ones, with the cached tier brought up
    to now (a grace period or a pending cancel can run out with no webhook to tell us).

    Usually straight from the plain rows read at sign-in (`caller`); through the ORM rows
    (`load_user`) when something must be written, or after `refresh` re-read Stripe."""
    if not refresh and isinstance(caller, UserRow):
        settled = settled_standing(caller, now_ms())
        if settled is not None:
            return settled
    user = load_user()
    if refresh:
        sync_user(current_gateway(), user)
        outside_transaction()
    row = current_subscription(user) if refresh else deciding_subscription(user.subscriptions)
    settle_entitlements(user, row, now_ms())
    commit_if_written()  # usually nothing was written: the read just ends
    live = live_subscriptions(user.id) if refresh else live_among(user.subscriptions)
    return Standing(user, row, live)
