"""The one guarded write of a Stripe subscription into `subscriptions`, in Core SQL.

`store_subscription` is a single conditional upsert: the ordering rule
(`ordering.applies_in_sql`) sits in its ON CONFLICT ... WHERE, so the database decides and
writes on the row it locks, with no read before. The owner is resolved in the same statement
(the user linked to the customer, else the owner recorded, else the user `metadata.userId`
names: metadata never moves a subscription), and the statement
returns whether the owner's summary already mirrors the new state, so the summary and the
usage settlement run only when something they show really changed.

What the upsert does not settle falls back to the locked row and `judge_event`: an event in
the same second as the one we hold, with a different object, is re-read from Stripe while
the row stays locked (`reread`). Answers from our own Stripe calls go through `reads.apply_read`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    String,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.orm import joinedload

from app.billing.accounts.store import create_named_owner, lock_owner, settle_mirror_only
from app.billing.accounts.users import flag_ownership_mismatch, get_or_create_user
from app.billing.statuses import LIVE_STATUSES
from app.billing.subscriptions.mirror import MIRRORED
from app.billing.subscriptions.ordering import (
    Verdict,
    applies_in_sql,
    has_ended_in_sql,
    judge_event,
    matches_in_sql,
)
from app.billing.subscriptions.summary import (
    check_once_for_duplicates,
    fresh_subscriptions,
    link_customer,
    live_among,
    report_duplicates,
    settle_new_user,
    settle_user,
)
from app.billing.time import now_ms
from app.db import dialect_name, execute_prebuilt, insert_for, row_for_update, upsert
from app.extensions import db
from app.models import Subscription, User, utcnow
from app.stripe.objects import subscription_fields

log = logging.getLogger(__name__)

StripeDict = dict[str, Any]
Reread = Callable[[str], StripeDict]

subscriptions = Subscription.__table__
users = User.__table__


@dataclass(frozen=True)
class Stored:
    """What a write did: whose subscription it is, and whether their summary is out of step."""

    subscription_id: str
    user_id: str | None
    customer_id: str | None
    summary_stale: bool
    previous_owner: str | None = None


def _holder_id(customer: Any = None) -> Any:
    """The user linked to `customer` (SQL; the bound parameter by default): our link."""
    if customer is None:
        customer = bindparam("customer_id", type_=String)
    return select(users.c.id).where(users.c.stripe_customer_id == customer).scalar_subquery()


# The customer's user for each row an upsert of many proposes, as text: SQLAlchemy would put
# `excluded` in the subquery's FROM rather than correlate it.
_EXCLUDED_HOLDER = literal_column(
    "(SELECT h.id FROM users AS h WHERE h.stripe_customer_id = excluded.customer_id)", String
)


def owner_id(customer: Any = None, named_user: Any = None) -> Any:
    """The owner of a new row as SQL: the customer's user first; our `metadata.userId` only
    when no user holds the customer, and only if that user pays through no other customer.
    Metadata can be edited in the Dashboard or by anyone holding the key; the link is ours."""
    if customer is None:
        customer = bindparam("customer_id", type_=String)
    if named_user is None:
        named_user = bindparam("named_user", type_=String)
    named = select(users.c.id).where(
        users.c.id == named_user,
        or_(
            users.c.stripe_customer_id.is_(None),
            customer.is_(None),
            users.c.stripe_customer_id == customer,
        ),
    )
    return func.coalesce(_holder_id(customer), named.scalar_subquery())


def _summary_stale(dialect: str) -> Any:
    """True unless the owner's row already mirrors the written subscription, customer
    included. Spelled out in SQL because SQLAlchemy drops table names inside RETURNING."""
    same = "IS NOT DISTINCT FROM" if dialect == "postgresql" else "IS"
    pairs = [(field.user_column, field.column) for field in MIRRORED if field.user_column]
    mirrored = ", ".join(f"owner.{user_column}" for user_column, _ in pairs)
    mirrors = ", ".join(f"subscriptions.{column}" for _, column in pairs)
    where = (  # one row comparison rather than one condition per column
        "owner.id = subscriptions.user_id AND owner.stripe_customer_id = subscriptions.customer_id"
        f" AND ({mirrored}) {same} ({mirrors})"
    )
    # Built from our own column names only (MIRRORED), never from input.
    sql = f"NOT EXISTS (SELECT 1 FROM users AS owner WHERE {where})"  # nosec B608
    return literal_column(sql, Boolean)


def _new_row() -> dict[str, Any]:
    """The row an upsert proposes: the object's columns as parameters, the owner in SQL."""
    values: dict[str, Any] = {
        name: bindparam(name, type_=subscriptions.c[name].type) for name in WRITTEN
    }
    return {**values, "user_id": owner_id()}


@functools.cache
def _store_statement(dialect: str, from_event: bool) -> Any:
    """The guarded upsert, built once per process (values are bound at execution)."""
    statement = insert_for(dialect, subscriptions).values(_new_row())
    return guarded(statement, dialect, from_event)


def guarded(statement: Any, dialect: str, from_event: bool, *, many: bool = False) -> Any:
    """ON CONFLICT: write only what the ordering rule lets through, returning the owner.
    `many`: the statement proposes several rows (`batch.py`), each with its own customer."""
    row, new = subscriptions.c, statement.excluded
    # The customer's user, else the owner we recorded; metadata never moves a subscription.
    owner = func.coalesce(_EXCLUDED_HOLDER if many else _holder_id(), row.user_id, new.user_id)
    newer = and_(
        new.last_event_created.is_not(None),
        or_(row.last_event_created.is_(None), new.last_event_created > row.last_event_created),
    )
    differs = or_(not_(matches_in_sql(row, new)), row.user_id.is_distinct_from(owner))
    changes: dict[str, Any] = {name: getattr(new, name) for name in subscription_fields({})}
    changes.update(
        customer_id=func.coalesce(new.customer_id, row.customer_id),
        user_id=owner,
        past_due_since=case(
            (new.status == "past_due", func.coalesce(row.past_due_since, new.past_due_since)),
            else_=None,
        ),
        stripe_created=func.coalesce(new.stripe_created, row.stripe_created),
        last_event_created=case((newer, new.last_event_created), else_=row.last_event_created),
        updated_at=new.updated_at,
    )
    condition = or_(differs, newer)
    if from_event:
        condition = and_(applies_in_sql(row, new), condition)
    else:
        # Stripe never revives an ended subscription: a read showing it live was made before
        # the end we already hold (its answer came late). Deleted stays deleted.
        revives = and_(  # coalesce: a row with no state yet (NULL) revives nothing
            has_ended_in_sql(func.coalesce(row.status, "")),
            not_(has_ended_in_sql(func.coalesce(new.status, ""))),
        )
        condition = and_(not_(revives), condition)
    return statement.on_conflict_do_update(
        index_elements=[row.id], set_=changes, where=condition
    ).returning(
        row.id,
        row.user_id,
        row.customer_id,
        _summary_stale(dialect).label("summary_stale"),
        _previous_owner(dialect).label("previous_owner"),
    )


def _previous_owner(dialect: str) -> Any:
    """A user other than the owner whose row still mirrors this subscription (it moved to the
    customer's user): their summary must be refreshed. Read in the same round trip."""
    other = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"  # constants only
    sql = (
        "(SELECT prev.id FROM users AS prev WHERE prev.stripe_subscription_id = subscriptions.id"
        f" AND prev.id {other} subscriptions.user_id LIMIT 1)"  # nosec B608
    )
    return literal_column(sql, String)


# The columns the upsert binds from the Stripe object (user_id is resolved in SQL).
WRITTEN = (
    "id",
    *subscription_fields({}),
    "past_due_since",
    "stripe_created",
    "last_event_created",
    "updated_at",
)


def store_params(subscription: StripeDict, event_created: int | None) -> dict[str, Any]:
    """The upsert's parameters for `subscription`."""
    fields = subscription_fields(subscription)
    named = (subscription.get("metadata") or {}).get("userId")
    params = {
        **fields,
        "id": subscription["id"],
        "named_user": named if isinstance(named, str) and named else None,
        "past_due_since": now_ms() if fields["status"] == "past_due" else None,
        "stripe_created": subscription.get("created") or None,
        "last_event_created": event_created,
        "updated_at": utcnow(),
    }
    return params


def stored_from(written: Sequence[Any] | None) -> Stored | None:
    """The upsert's returned row (id, owner, customer, stale, previous owner); None when it
    wrote nothing."""
    if written is None:
        return None
    return Stored(written[0], written[1], written[2], bool(written[3]), written[4])


def store_subscription(subscription: StripeDict, *, event_created: int | None) -> Stored | None:
    """Write `subscription` unless the ordering rule says we hold something newer; None when
    nothing was written (older, identical, or undecidable here: see `apply_subscription`).

    `event_created` None means a fresh API read: the truth, written whenever it differs."""
    statement = _store_statement(dialect_name(), event_created is not None)
    params = store_params(subscription, event_created)
    return stored_from(execute_prebuilt(statement, params).first())


def apply_subscription(
    subscription: StripeDict, *, event_created: int | None = None, reread: Reread | None = None
) -> Stored | None:
    """Store `subscription` unless what we hold is newer, then bring its owner up to date.

    `event_created` is the `created` of the event carrying the object; None means a fresh API
    read, which always applies (that is how `flask billing sync` repairs any row). An event's
    object is judged by the ordering rule: applied, skipped as older than what we hold, or,
    when the order can't be told, replaced by a re-read through `reread` under the row lock."""
    lock_owner(subscription)
    stored = store_subscription(subscription, event_created=event_created)
    return finish_applying(stored, subscription, event_created, reread)


def finish_applying(
    stored: Stored | None,
    subscription: StripeDict,
    event_created: int | None,
    reread: Reread | None,
) -> Stored | None:
    """After the upsert (`stored`: what it wrote, or None): decide what it could not, then
    bring the owner's summary up to date."""
    if stored is None and event_created is not None:
        stored = _undecided(subscription, event_created, reread)
    if stored is not None:
        _settle_owner(stored, subscription)
    return stored


def _undecided(
    subscription: StripeDict, event_created: int, reread: Reread | None
) -> Stored | None:
    """The upsert wrote nothing: older, identical, or the same second and different."""
    row = row_for_update(Subscription, subscription["id"])
    if judge_event(row, subscription, event_created) is not Verdict.REREAD:
        return None
    if reread is None:
        log.warning("event for %s may be stale and no re-read is possible", row.id)
        return None
    log.info("event for %s is as old as our state and differs; re-reading", row.id)
    return store_subscription(reread(row.id), event_created=None)


def _settle_owner(stored: Stored, subscription: StripeDict) -> None:
    """Place a subscription no user holds with the user our metadata names (even before their
    row existed), flag metadata naming someone else, and refresh the summaries that do not
    mirror the stored state yet: the owner's, and a previous owner's when it moved."""
    named = (subscription.get("metadata") or {}).get("userId")
    placed = False
    created = None
    if isinstance(named, str) and named and stored.user_id is None:
        created = create_named_owner(named, stored.subscription_id, stored.customer_id)
    if created is not None:
        stored = Stored(
            stored.subscription_id, named, stored.customer_id, True, stored.previous_owner
        )
    elif isinstance(named, str) and named and named != stored.user_id:
        placed_with = _place_with_named_user(stored, named)
        # Placed with the named user: the upsert found no user holding the customer, so that
        # user is not linked to it yet and the mirror-only path would only read and decline.
        placed, stored = placed_with is not stored, placed_with
    if stored.previous_owner is not None:
        previous = db.session.get(User, stored.previous_owner, populate_existing=True)
        if previous is not None:
            settle_user(previous)
    if stored.user_id is None:
        return
    if not stored.summary_stale:
        # The owner's summary already mirrors this subscription; another live one beside it
        # (applied in a transaction that could not see this one) means the user pays twice:
        # the policy acts once this commits.
        if subscription.get("status") in LIVE_STATUSES:
            check_once_for_duplicates(stored.user_id, stored.subscription_id)
        return
    if created is not None:  # a user row this transaction inserted, with all their rows
        new_user, owned = created
        settle_new_user(new_user, owned)
        report_duplicates(new_user.id, live_among(owned))
        return
    if not placed and settle_mirror_only(stored.user_id, stored.customer_id):
        return
    user = db.session.get(
        User,
        stored.user_id,
        populate_existing=True,
        options=[joinedload(User.subscriptions)],  # with the user: one statement
    )
    if user is None:
        return
    if user.stripe_customer_id == stored.customer_id:
        settle_user(user, user.subscriptions)
        report_duplicates(user.id, live_among(user.subscriptions))
    else:  # linking may adopt subscriptions the loaded list does not show yet
        link_customer(user, stored.customer_id)
        owned = fresh_subscriptions(user.id)  # read once, after the link adopted orphans
        settle_user(user, owned)
        report_duplicates(user.id, live_among(owned))


def _place_with_named_user(stored: Stored, named: str) -> Stored:
    """`metadata.userId` disagrees with the owner the statement resolved."""
    if stored.user_id is not None:  # anchored: the customer's user, or the owner we recorded
        flag_ownership_mismatch(stored.subscription_id, claimed=named, owner=stored.user_id)
        return stored
    user = get_or_create_user(named)
    customer = stored.customer_id
    if user.stripe_customer_id and customer and user.stripe_customer_id != customer:
        # The named user pays through another customer: not theirs to adopt.
        flag_ownership_mismatch(stored.subscription_id, claimed=named, owner=None)
        return stored
    db.session.execute(
        update(Subscription).where(Subscription.id == stored.subscription_id).values(user_id=named)
    )
    return Stored(stored.subscription_id, named, stored.customer_id, True, stored.previous_owner)


def subscription_row(subscription_id: str) -> Subscription:
    """The row as stored now (for callers that show or compare it after a write)."""
    return db.session.execute(
        select(Subscription)
        .where(Subscription.id == subscription_id)
        .execution_options(populate_existing=True)
    ).scalar_one()


def attach_subscription_id(user: User, subscription_id: str) -> None:
    """A checkout told us the id before the subscription's own events arrived."""
    db.session.execute(
        upsert(Subscription)
        .values(id=subscription_id, user_id=user.id, customer_id=user.stripe_customer_id)
        .on_conflict_do_update(
            index_elements=[subscriptions.c.id],
            set_={
                "user_id": func.coalesce(subscriptions.c.user_id, user.id),
                "customer_id": func.coalesce(subscriptions.c.customer_id, user.stripe_customer_id),
            },
        )
    )


def note_trial_will_end(subscription_id: str, warned_at: int) -> None:
    """Stripe warned that the trial ends soon (ms): kept for /api/me's banner. The newest
    warning wins, so a replay of an old one changes nothing."""
    db.session.execute(
        update(Subscription)
        .where(
            Subscription.id == subscription_id,
            func.coalesce(Subscription.trial_will_end_at, 0) < warned_at,
        )
        .values(trial_will_end_at=warned_at)
    )
