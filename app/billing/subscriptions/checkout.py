"""Starting a checkout and fulfilling a completed one (from the redirect or the webhook).

One live subscription per user, whatever the timing: our database may not know yet about a
subscription (webhooks late, the app down while the user paid), so before a session is made for
a user who has a Stripe customer, Stripe is asked (one list call) and a live subscription there
is a 409; and the user's other open sessions are expired first, so two tabs can't both be paid.
Checkouts of one user are serialised (`claims.py`): a double click or a retried request gets
the session already made for that price back, or 409 `checkout_in_progress` if it is still being
made after CHECKOUT_WAIT_SECONDS. What still slips through (two payments in the same instant)
is acted on as soon as the second subscription arrives (`duplicates.py`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import update

from app.billing.accounts.users import flag_ownership_mismatch, get_or_create_user, user_by_customer
from app.billing.errors import (
    BillingError,
    Conflict,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
)
from app.billing.invoices.tax import checkout_tax_params
from app.billing.statuses import LIVE_STATUSES
from app.billing.subscriptions import claims
from app.billing.subscriptions.reads import apply_read
from app.billing.subscriptions.store import attach_subscription_id
from app.billing.subscriptions.summary import (
    adopt_orphans,
    current_subscription,
    link_customer,
    settle_user,
)
from app.db import outside_transaction, unit_of_work
from app.extensions import db
from app.models import User, utcnow
from app.stripe.gateway import CheckoutTrial, StripeDict, StripeGateway
from app.stripe.objects import object_id

log = logging.getLogger(__name__)


def ensure_customer(gateway: StripeGateway, user: User) -> tuple[str, bool]:
    """The user's Stripe customer, created once (Stripe replays racing or retried creates by
    the key); True when it was created by this call."""
    if user.stripe_customer_id:
        return user.stripe_customer_id, False
    email = user.email
    outside_transaction()
    customer = gateway.create_customer(user_id=user.id)
    if email and customer.get("email") != email:
        # Before storing the id: if this fails, the retry replays the create and sets it then.
        gateway.update_customer_email(customer["id"], email)
    with unit_of_work():
        db.session.execute(
            update(User)
            .where(User.id == user.id, User.stripe_customer_id.is_(None))
            .values(stripe_customer_id=customer["id"], stripe_customer_email=email)
        )
        db.session.refresh(user)
        if user.stripe_customer_id == customer["id"]:
            # Events for this customer may have come in before this link.
            adopt_orphans(user.id, customer["id"])
    return user.stripe_customer_id or customer["id"], True


def _subscription_exists(subscription_id: str) -> Conflict:
    return Conflict(
        "You already have a subscription. Manage it in the billing portal.",
        code="subscription_exists",
        details={"portal": "/api/create-portal-session", "subscriptionId": subscription_id},
    )


def _refuse_if_live_in_stripe(gateway: StripeGateway, customer_id: str) -> None:
    """409 when Stripe knows a live subscription of this customer (storing what it said)."""
    asked_at = utcnow()
    live = [
        sub for sub in gateway.live_subscriptions(customer_id) if sub.get("status") in LIVE_STATUSES
    ]
    if not live:
        return
    with unit_of_work():
        for subscription in live:
            apply_read(gateway, subscription, read_started=asked_at)
    raise _subscription_exists(live[0]["id"])


def _expire_open_sessions(gateway: StripeGateway, customer_id: str) -> None:
    """Expire the customer's open sessions (another tab, an earlier attempt), so at most the
    session about to be made can be paid. One that completes meanwhile can't be expired."""
    for session in gateway.list_open_checkout_sessions(customer_id):
        try:
            gateway.expire_checkout_session(session["id"])
        except BillingError as exc:
            if isinstance(exc, ProviderUnavailable):
                raise
            log.warning("could not expire checkout session %s: %s", session["id"], exc.code)
            if gateway.retrieve_checkout_session(session["id"]).get("status") == "complete":
                raise _subscription_exists(
                    object_id(session.get("subscription")) or session["id"]
                ) from exc


@dataclass(frozen=True)
class Serialising:
    """How checkouts of one user wait for each other (CHECKOUT_* settings)."""

    claim_for: timedelta  # a claim older than this was abandoned (its maker died)
    reuse_for: timedelta  # a session made this recently is handed back for the same price
    wait_for: float  # seconds a request waits for another's session before answering 409
    poll: float = 0.1

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Serialising:
        return cls(
            claim_for=timedelta(seconds=config["CHECKOUT_CLAIM_SECONDS"]),
            reuse_for=timedelta(seconds=config["CHECKOUT_REUSE_SECONDS"]),
            wait_for=float(config["CHECKOUT_WAIT_SECONDS"]),
        )


def start_checkout(
    gateway: StripeGateway,
    user: User,
    *,
    price_id: str,
    success_url: str,
    cancel_url: str,
    metadata: dict[str, str],
    quantity: int = 1,
    trial: CheckoutTrial | None = None,
    promotion_code: str | None = None,
    serialising: Serialising,
) -> StripeDict:
    """A session for `price_id`: the one already made for this user and price if there is
    one, else a new one made by exactly one request at a time per user."""
    live = current_subscription(user)
    if live is not None and live.is_live:
        raise _subscription_exists(live.id)
    if trial is not None and user.subscriptions:
        trial = None  # one trial per user: only a first subscription starts with one
    deadline = time.monotonic() + serialising.wait_for
    while True:
        outcome = claims.claim(
            user.id,
            _what_was_asked(price_id, quantity, promotion_code),
            claim_for=serialising.claim_for,
            reuse_for=serialising.reuse_for,
        )
        if isinstance(outcome, claims.Made):
            return _handed_back(outcome)
        if isinstance(outcome, claims.Taken):
            break
        if time.monotonic() >= deadline:
            raise Conflict(
                "A checkout for you is being started. Try again in a moment.",
                code="checkout_in_progress",
            )
        time.sleep(serialising.poll)
    try:
        db.session.refresh(user)  # the request before this one may have made the customer
        session = _new_session(
            gateway,
            user,
            price_id=price_id,
            success_url=success_url,
            cancel_url=cancel_url,
            metadata=metadata,
            quantity=quantity,
            trial=trial,
            promotion_code=promotion_code,
        )
    except BaseException:
        claims.release(user.id, outcome.token)
        raise
    claims.record_made(
        user.id, outcome.token, session["id"], session.get("url"), object_id(session["customer"])
    )
    return session


def _what_was_asked(price_id: str, quantity: int, promotion_code: str | None) -> str:
    """What a repeated click must match to get the same session back: the price, and the
    seats and promotion code when they are not the defaults (another choice is a new session)."""
    if quantity == 1 and not promotion_code:
        return price_id
    return f"{price_id}|{quantity}|{promotion_code or ''}"[:255]


def _handed_back(made: claims.Made) -> StripeDict:
    """The session made earlier, as the API shows a new one (it is still open: a paid one is
    forgotten when its payment is fulfilled, and the user's live subscription refused above)."""
    return {
        "id": made.session_id,
        "object": "checkout.session",
        "url": made.url,
        "status": "open",
        "customer": made.customer_id,
        "subscription": None,
        "payment_status": "unpaid",
    }


def _new_session(
    gateway: StripeGateway,
    user: User,
    *,
    price_id: str,
    success_url: str,
    cancel_url: str,
    metadata: dict[str, str],
    quantity: int,
    trial: CheckoutTrial | None,
    promotion_code: str | None,
) -> StripeDict:
    customer_id, created = ensure_customer(gateway, user)
    outside_transaction()
    # Resolved before anything is expired: a mistyped code changes nothing.
    promotion_code_id = _promotion_code_id(gateway, promotion_code) if promotion_code else None
    if not created:  # a new customer has no subscription and no session yet
        _refuse_if_live_in_stripe(gateway, customer_id)
        _expire_open_sessions(gateway, customer_id)
    return gateway.create_checkout_session(
        user_id=user.id,
        customer_id=customer_id,
        price_id=price_id,
        success_url=success_url,
        cancel_url=cancel_url,
        metadata=metadata,
        quantity=quantity,
        trial=trial,
        promotion_code_id=promotion_code_id,
        tax=checkout_tax_params(current_app.config),
    )


def _promotion_code_id(gateway: StripeGateway, code: str) -> str:
    """The id of the active promotion code the customer typed; 400 when there is none."""
    found = gateway.find_promotion_code(code)
    if found is None or not found.get("active", True):
        raise InvalidRequest("This promotion code is not valid.", code="invalid_promotion_code")
    return str(found["id"])


def session_belongs_to(session: StripeDict, user: User) -> bool:
    owner = session.get("client_reference_id") or (session.get("metadata") or {}).get("userId")
    if owner:
        return bool(owner == user.id)
    customer = object_id(session.get("customer"))
    return customer is not None and customer == user.stripe_customer_id


def fulfil_checkout_session(
    session: StripeDict,
    *,
    user: User | None = None,
    gateway: StripeGateway | None = None,
    read_started: datetime | None = None,
) -> User | None:
    """Link the buyer to their customer and subscription; idempotent.

    From the redirect the session was read with its subscription expanded (by `gateway`, in a
    call that began at `read_started`), so its state is stored at once through the guarded
    path for reads; from the webhook it carries only ids and the subscription's own events
    bring the state."""
    if user is None:
        user_id = session.get("client_reference_id") or (session.get("metadata") or {}).get(
            "userId"
        )
        if not user_id:
            return None
        customer = object_id(session.get("customer"))
        holder = user_by_customer(customer) if customer else None
        if holder is not None and holder.id != user_id:
            # The customer link we stored decides, not what the session claims.
            flag_ownership_mismatch(session.get("id") or "", claimed=user_id, owner=holder.id)
            user = holder
        else:
            user = get_or_create_user(user_id)
    elif not session_belongs_to(session, user):
        raise NotFound("No such checkout session.", code="checkout_session_not_found")
    if session.get("status") != "complete":
        return user
    if session.get("id"):
        claims.forget_session(session["id"])  # paid: never handed back to a later click
    link_customer(user, object_id(session.get("customer")))
    db.session.flush()
    subscription = session.get("subscription")
    if isinstance(subscription, dict) and gateway is not None and read_started is not None:
        apply_read(gateway, subscription, read_started=read_started)
    elif subscription_id := object_id(subscription):
        attach_subscription_id(user, subscription_id)
    settle_user(user)
    return user
