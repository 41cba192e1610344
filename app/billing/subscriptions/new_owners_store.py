"""New owners in a batch of subscription events: the users first events name, created
settled (plan, limit and period from their deciding subscription) in one INSERT, with their
subscriptions placed (app/billing/subscriptions/batch_store.py's apply calls this)."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ARRAY, bindparam, cast, column, func, select
from sqlalchemy import update as update_statement

from app.billing.accounts.rows import SUBSCRIPTION_FIELDS, SubscriptionRow
from app.billing.subscriptions.mirror import summary_changes
from app.billing.subscriptions.store import Stored, subscriptions, users
from app.billing.subscriptions.summary import deciding_subscription, live_among, report_duplicates
from app.billing.time import now_ms
from app.billing.usage.periods import settle_new_user_entitlements
from app.db import dialect_name, execute_prebuilt, insert_for
from app.extensions import db
from app.models import User, utcnow

StripeDict = dict[str, Any]
# After the upsert: what it wrote (None: nothing), the object, its event's `created`.
Pending = tuple[Stored | None, StripeDict, int]


def create_owners(candidates: list[tuple[Stored, StripeDict, int]]) -> list[Pending]:
    """Create the users first events name, settled, with their subscriptions placed; what
    could not be created here (the user exists, another holds the customer, or the batch names
    them twice) is returned for one event's path."""
    rest: list[Pending] = []
    chosen: dict[str, tuple[Stored, str]] = {}  # customer -> (stored, user)
    named_users: set[str] = set()
    for stored, subscription, created in candidates:
        named = subscription["metadata"]["userId"]
        customer = str(stored.customer_id)
        if named in named_users or customer in chosen:
            rest.append((stored, subscription, created))
        else:
            named_users.add(named)
            chosen[customer] = (stored, named)
    if not chosen:
        return rest
    orphans = _orphans(chosen)
    stamp, now = utcnow(), now_ms()
    rows, owned_by = [], {}
    for customer, (_stored, named) in chosen.items():
        owned = orphans.get(customer, [])
        rows.append(_settled_user(named, customer, owned, stamp, now))
        owned_by[named] = owned
    created_ids = _insert_new_users(rows)
    placed = [customer for customer, (_s, named) in chosen.items() if named in created_ids]
    if placed:
        holder = select(users.c.id).where(users.c.stripe_customer_id == subscriptions.c.customer_id)
        db.session.execute(
            update_statement(subscriptions)
            .where(subscriptions.c.user_id.is_(None), subscriptions.c.customer_id.in_(placed))
            .values(user_id=holder.scalar_subquery())
        )
    for stored, subscription, created in candidates:
        named = subscription["metadata"]["userId"]
        first = chosen.get(str(stored.customer_id))
        if first is None or first[0] is not stored:
            continue
        if named in created_ids:
            report_duplicates(named, live_among(owned_by[named]))
        else:
            rest.append((stored, subscription, created))
    return rest


def _orphans(chosen: dict[str, tuple[Stored, str]]) -> dict[str, list[SubscriptionRow]]:
    """The subscriptions no user holds of these customers (the winners among them), locked."""
    statement = select(*(subscriptions.c[name] for name in SUBSCRIPTION_FIELDS)).where(
        subscriptions.c.customer_id.in_(list(chosen)), subscriptions.c.user_id.is_(None)
    )
    if dialect_name() == "postgresql":
        statement = statement.with_for_update()
    found: dict[str, list[SubscriptionRow]] = {}
    for row in db.session.execute(statement):
        subscription = SubscriptionRow(*row)
        found.setdefault(str(subscription.customer_id), []).append(subscription)
    return found


@functools.cache
def _insert_users_statement() -> Any:
    """PostgreSQL: INSERT the new users from one array per column (unnest), built once per
    process. The rows as VALUES made a statement too long for psycopg to cache its parsing
    (over 4 KB, 28 parameters a row): ~10% of the applier's CPU under load."""
    columns = list(users.columns)
    arrays = [cast(bindparam(c.key, type_=ARRAY(c.type)), ARRAY(c.type)) for c in columns]
    proposed = (
        func.unnest(*arrays)
        .table_valued(*(column(c.key, c.type) for c in columns))
        .render_derived(name="proposed")
    )
    rows = select(*(proposed.c[c.key] for c in columns))
    insert = insert_for("postgresql", users).from_select([c.key for c in columns], rows)
    return insert.on_conflict_do_nothing().returning(users.c.id)


def _insert_new_users(rows: list[dict[str, Any]]) -> set[str]:
    """Insert these users where none has their id yet; the ids inserted."""
    if dialect_name() == "postgresql":
        arrays = {c.key: [row[c.key] for row in rows] for c in users.columns}
        return set(execute_prebuilt(_insert_users_statement(), arrays).scalars())
    insert = insert_for(dialect_name(), User.__table__).on_conflict_do_nothing()
    return set(db.session.execute(insert.returning(users.c.id), rows).scalars())


def _settled_user(
    user_id: str, customer: str, owned: list[SubscriptionRow], stamp: Any, now: int
) -> dict[str, Any]:
    """The new user's row: linked to the customer, mirroring the deciding subscription, with
    the plan, limit and period it entitles them to (`settle_new_user`, before the INSERT)."""
    user = User(
        id=user_id,
        email=None,
        name=None,
        stripe_customer_id=customer,
        subscription_status="free",
        subscription_tier="free",
        generations_used=0,
        generations_limit=10,
        credit_balance=0,
        cancel_at_period_end=False,
        created_at=stamp,
        updated_at=stamp,
    )
    deciding = deciding_subscription(owned)
    for name, value in summary_changes(user, deciding).items():
        setattr(user, name, value)
    settle_new_user_entitlements(user, deciding, now)
    return {c.key: getattr(user, c.key) for c in users.columns}
