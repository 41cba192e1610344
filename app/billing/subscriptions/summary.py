"""A user's summary: the subscription that decides their state, mirrored onto their row, and
the plan, limit and usage period that follow from it (`settle_user`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TypeVar

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from app.billing.accounts.rows import AnySubscription, AnyUser
from app.billing.statuses import LIVE_STATUSES
from app.billing.subscriptions.mirror import copy_to_user
from app.billing.time import now_ms
from app.billing.usage.periods import settle_entitlements, settle_new_user_entitlements
from app.extensions import db
from app.models import Subscription, User

log = logging.getLogger(__name__)

# The ORM row or the plain one (app/billing/accounts/rows.py): the same rules pick among either.
S = TypeVar("S", bound=AnySubscription)


def current_subscription(user: User) -> Subscription | None:
    """The subscription that decides the user's state: a live one first, else the newest."""
    rows = (
        db.session.execute(
            select(Subscription)
            .where(Subscription.user_id == user.id, Subscription.status.is_not(None))
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )
    return deciding_subscription(rows)


def deciding_subscription(rows: Iterable[S]) -> S | None:
    """A live subscription first, else the newest (rows without a state yet don't count)."""
    candidates = [row for row in rows if row.has_state]
    if not candidates:
        return None
    return max(candidates, key=_precedence)


def loaded_deciding_subscription(user: AnyUser) -> AnySubscription | None:
    """The deciding one of the subscriptions loaded with the user (either kind of row)."""
    rows: Iterable[AnySubscription] = user.subscriptions
    return deciding_subscription(rows)


def _precedence(row: AnySubscription) -> tuple[bool, int, str]:
    """Live before ended, then the newest; the id settles a tie (two created in one second), so
    every reader picks the same row whatever order the database returns them in."""
    return (row.is_live, row.stripe_created or 0, row.id)


def fresh_subscriptions(user_id: str) -> list[Subscription]:
    """All the user's subscriptions as stored now: one read for `settle_user` and
    `report_duplicates` together (what `current_subscription` and `live_subscriptions`
    would each read)."""
    return list(
        db.session.execute(
            select(Subscription)
            .where(Subscription.user_id == user_id)
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )


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
    return live_among(rows)


def live_among(rows: Iterable[S]) -> list[S]:
    """The live ones of `rows`, the deciding one first."""
    return sorted((row for row in rows if row.is_live), key=_precedence, reverse=True)


# session.info key: users found paying twice in the open transaction (acted on once it commits).
DUPLICATES_FOUND = "duplicate_users"
# session.info key: subscriptions whose owner was already checked for a second live one in the
# open transaction (a batch of events for one subscription checks once; cleared at its end).
LIVE_CHECKED = "live_checked_subscriptions"


def check_once_for_duplicates(user_id: str, subscription_id: str) -> None:
    """Report the owner if this live subscription stands beside another live one, once per
    subscription per transaction: its later events in the same batch change no other row."""
    checked = db.session.info.setdefault(LIVE_CHECKED, set())
    if subscription_id in checked:
        return
    checked.add(subscription_id)
    report_duplicates(user_id, live_subscriptions(user_id))


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_checks(session: Session) -> None:
    session.info.pop(LIVE_CHECKED, None)


def report_duplicates(user_id: str, live: Sequence[AnySubscription]) -> None:
    """One live subscription per user: a second one means the user pays twice. Checkout makes
    it nearly impossible (checkout.py); if it happens anyway, say so loudly, and have the
    duplicate policy act as soon as this transaction commits (duplicates.py;
    docs/reliability.md)."""
    if len(live) > 1:
        db.session.info.setdefault(DUPLICATES_FOUND, set()).add(user_id)
        log.error(
            "user %s has %d live subscriptions: %s (see `flask billing check`)",
            user_id,
            len(live),
            ", ".join(row.id for row in live),
        )


def owned_subscription(user: User, subscription_id: str | None) -> Subscription | None:
    """The caller's subscription by id (None if it is not theirs), or their current one."""
    if subscription_id is None:
        return current_subscription(user)
    row = db.session.get(Subscription, subscription_id, populate_existing=True)
    return row if row is not None and row.user_id == user.id else None


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
    if user.stripe_customer_id == customer_id:
        adopt_orphans(user.id, customer_id)


def adopt_orphans(user_id: str, customer_id: str) -> None:
    """Subscriptions of the customer written before we knew whose it was become the user's."""
    db.session.execute(
        update(Subscription)
        .where(Subscription.customer_id == customer_id, Subscription.user_id.is_(None))
        .values(user_id=user_id)
        .execution_options(synchronize_session=False)
    )


def settle_user(
    user: User, subscriptions: Iterable[Subscription] | None = None, now: int | None = None
) -> None:
    """Mirror the deciding subscription onto the user row (its mirrored columns), then settle
    the tier, the generation limit and the usage period (grace policy and plans).

    `subscriptions`: the user's, if the caller loaded them fresh in this transaction."""
    db.session.flush()
    if subscriptions is None:
        subscription = current_subscription(user)
    else:
        subscription = deciding_subscription(subscriptions)
    copy_to_user(user, subscription)
    settle_entitlements(user, subscription, now_ms() if now is None else now)


def settle_new_user(
    user: User, subscriptions: Iterable[Subscription], now: int | None = None
) -> None:
    """`settle_user` for a user row this transaction inserted, with all their subscriptions:
    the mirror and the entitlements are set on the row and written in one UPDATE at the next
    flush (no lock and re-read: no other transaction sees the row before we commit)."""
    subscription = deciding_subscription(subscriptions)
    copy_to_user(user, subscription)
    settle_new_user_entitlements(user, subscription, now_ms() if now is None else now)
