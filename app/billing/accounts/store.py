"""The caller's account for the hot requests, read with one Core statement.

GET /api/subscription/<id>, GET /api/me and POST /api/usage/generations are most of the
traffic, and for a known user almost always write nothing to the user row. Loading the user
and their subscriptions as ORM objects (identity map, instrumented attributes) cost more CPU
than the rest of such a request; here the same columns are read into plain rows
(rows.py) that the same rules read. Whenever something must be written (a new user,
a changed email or name, a plan or usage period to settle) the callers take the ORM path
instead, which writes as before."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm.util import identity_key

from app.billing.accounts.rows import (
    SUBSCRIPTION_FIELDS,
    USER_FIELDS,
    AnySubscription,
    AnyUser,
    SubscriptionRow,
    UserRow,
)
from app.billing.accounts.users import claims_match, customer_email_stale
from app.billing.subscriptions.mirror import summary_changes
from app.billing.subscriptions.summary import deciding_subscription, live_among, report_duplicates
from app.billing.time import now_ms
from app.billing.usage.periods import is_settled
from app.db import autocommit_connection, dialect_name, upsert
from app.extensions import db
from app.models import Subscription, User
from app.stripe.gateway import StripeDict

_users = User.__table__.c
_subscriptions = Subscription.__table__.c

# Built once: a statement object caches its compiled form's key, so each request only binds.
# Table columns (not ORM attributes), so the session runs it as plain Core.
_ACCOUNT = (
    select(
        *(_users[name] for name in USER_FIELDS),
        *(_subscriptions[name] for name in SUBSCRIPTION_FIELDS),
    )
    .select_from(
        User.__table__.outerjoin(Subscription.__table__, _subscriptions.user_id == _users.id)
    )
    .where(_users.id == bindparam("user_id"))
)
_SPLIT = len(USER_FIELDS)


def read_account(user_id: str, *, in_transaction: bool) -> UserRow | None:
    """The user and all their subscriptions (as `User.subscriptions` holds them), or None.

    `in_transaction`: read in the session's transaction, which the caller goes on to write in.
    Otherwise, on PostgreSQL, the one statement runs in autocommit on a pooled connection of
    its own: a single statement reads a consistent snapshot by itself, and it costs one round
    trip instead of three (BEGIN, SELECT, ROLLBACK), the largest share of a read's CPU. SQLite
    reads in the session: its engine starts every transaction with BEGIN IMMEDIATE
    (app/db.py), autocommit or not, and a test database may be a single connection."""
    parameters = {"user_id": user_id}
    if in_transaction or dialect_name() != "postgresql":
        rows = db.session.execute(_ACCOUNT, parameters).all()
    else:
        with autocommit_connection() as connection:
            rows = connection.execute(_ACCOUNT, parameters).all()
    if not rows:
        return None
    user = UserRow(*rows[0][:_SPLIT])
    user.subscriptions = [SubscriptionRow(*row[_SPLIT:]) for row in rows if row[_SPLIT] is not None]
    return user


def signed_in_account(
    user_id: str, *, email: str | None, name: str | None, in_transaction: bool
) -> UserRow | None:
    """The caller's account when signing them in writes nothing (known user, same email and
    name as the token's); None when `ensure_user` has work to do."""
    user = read_account(user_id, in_transaction=in_transaction)
    if user is None or not claims_match(user, email=email, name=name):
        return None
    if customer_email_stale(user):
        return None  # the full sign-in sends the new email to Stripe
    return user


@dataclass(frozen=True)
class Standing:
    """A user as the subscription replies show them: the user, their deciding subscription
    and their live subscriptions (the deciding one first)."""

    user: AnyUser
    subscription: AnySubscription | None
    live: Sequence[AnySubscription]


def settled_standing(user: UserRow, now: int) -> Standing | None:
    """The user's standing read from the plain rows, when their cached plan and usage period
    are current at `now`; None when `settle_entitlements` has something to write."""
    subscription = deciding_subscription(user.subscriptions)
    if not is_settled(user, subscription, now):
        return None
    return Standing(user, subscription, live_among(user.subscriptions))


def settle_mirror_only(user_id: str, customer_id: str | None, now: int | None = None) -> bool:
    """`settle_user` for the common change, without the ORM: when the user is the customer's
    and their plan, limit and usage period stay as they are, only the mirrored columns move:
    one SELECT of the user with their subscriptions (in the writer's transaction) and one
    UPDATE (none if nothing moved).

    False, with nothing written, when the full `settle_user` must decide: the user is not
    linked to this customer yet, their entitlements change, or this session already holds
    their row (an UPDATE behind its back would leave that object stale for the caller)."""
    if customer_id is None or identity_key(User, user_id) in db.session.identity_map:
        return False
    user = read_account(user_id, in_transaction=True)
    if user is None or user.stripe_customer_id != customer_id:
        return False
    deciding = deciding_subscription(user.subscriptions)
    if not is_settled(user, deciding, now_ms() if now is None else now):
        return False
    moved = summary_changes(user, deciding)
    if moved:
        users = User.__table__
        db.session.execute(update(users).where(users.c.id == user_id).values(moved))
    report_duplicates(user_id, live_among(user.subscriptions))
    return True


def create_named_owner(
    user_id: str, subscription_id: str, customer_id: str | None
) -> tuple[User, list[Subscription]] | None:
    """A subscription's first event names a user we have never seen, and no user holds its
    customer: create the user already linked to the customer (one INSERT ... ON CONFLICT DO
    NOTHING returning the row) and place the subscription and the customer's orphans with
    them (one UPDATE returning the rows). What `get_or_create_user`, the placing UPDATE,
    `link_customer` and `fresh_subscriptions` did in eight statements, in two: for a row
    inserted here, the reads between them could only say "not there yet" or "no one else".

    The user and all their subscriptions (no other row can point at a user that did not exist:
    the foreign key); None, with nothing written, when the user exists or another user took
    the customer meanwhile (any unique conflict): the general path decides then."""
    created = db.session.execute(
        upsert(User)
        .values(id=user_id, email=None, name=None, stripe_customer_id=customer_id)
        .on_conflict_do_nothing()
        .returning(User),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()
    if created is None:
        return None
    placed = Subscription.id == subscription_id
    if customer_id is not None:
        placed = or_(
            placed, and_(Subscription.customer_id == customer_id, Subscription.user_id.is_(None))
        )
    owned = (
        db.session.execute(
            update(Subscription).where(placed).values(user_id=user_id).returning(Subscription),
            execution_options={"populate_existing": True, "synchronize_session": False},
        )
        .scalars()
        .all()
    )
    return created, list(owned)


# -- row locks: the user's row first, then the subscription's, on every path -------------------


def lock_user(user_id: str) -> None:
    """Lock the user's row first (PostgreSQL; SQLite's writers queue on BEGIN IMMEDIATE)."""
    if dialect_name() == "postgresql":
        users = User.__table__
        db.session.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())


def lock_owner(subscription: StripeDict) -> None:
    """Lock order everywhere: the owner's user row, then the subscription's. The success page
    locked the user first and the webhook the subscription first, so the two could deadlock
    on one purchase. The owner: the user linked to the customer, or the one metadata names."""
    if dialect_name() != "postgresql":
        return
    customer = subscription.get("customer")
    customer = customer.get("id") if isinstance(customer, dict) else customer
    named = (subscription.get("metadata") or {}).get("userId")
    users = User.__table__
    conditions = []
    if isinstance(customer, str) and customer:
        conditions.append(users.c.stripe_customer_id == customer)
    if isinstance(named, str) and named:
        conditions.append(users.c.id == named)
    if conditions:
        db.session.execute(
            select(users.c.id).where(or_(*conditions)).order_by(users.c.id).with_for_update()
        )
