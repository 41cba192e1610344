"""Many subscription events applied together: the applier's set-based path.

A batch's subscription events (`handlers.STATE_EVENT_TYPES`) are folded into one event per
subscription by the ordering rule (`ordering.newest_of`), and the winners are written by one
guarded upsert (`store.guarded`, the same rule and the same RETURNING as one event's upsert),
their proposed rows unnested from one array per column on PostgreSQL (one statement text,
prepared once per connection) and read from one JSON document on SQLite. What follows is
set-based for the two common cases, and `store.finish_applying` (one event's path) for the
rest:

- a subscription whose first event names a user we never saw, and no user holds its customer:
  the users are inserted already settled (mirror, plan, limit, period) in one INSERT, and their
  subscriptions and their customers' orphans placed with them in one UPDATE (what
  `create_named_owner` and `settle_new_user` do for one, in four statements for any number);
- an owner whose summary already mirrors the written state: the check for a second live
  subscription is one read for the whole batch.

Row locks keep their order: the owners' user rows first (one SELECT ... FOR UPDATE, by id),
then the subscriptions (the upsert, by id), so this path and one event's never deadlock.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    String,
    any_,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    or_,
    select,
    true,
)

from app.billing.accounts.rows import SUBSCRIPTION_FIELDS, SubscriptionRow
from app.billing.statuses import LIVE_STATUSES
from app.billing.subscriptions.new_owners_store import Pending, create_owners
from app.billing.subscriptions.ordering import Snapshot, Verdict, judge_event, newest_of
from app.billing.subscriptions.store import (
    WRITTEN,
    Reread,
    Stored,
    apply_subscription,
    finish_applying,
    guarded,
    owner_id,
    store_params,
    stored_from,
    subscriptions,
    users,
)
from app.billing.subscriptions.summary import (
    LIVE_CHECKED,
    live_among,
    report_duplicates,
)
from app.db import dialect_name, execute_prebuilt, insert_for
from app.extensions import db
from app.stripe.objects import subscription_fields

StripeDict = dict[str, Any]
Event = tuple[StripeDict, int]  # a subscription object and its event's `created`

_PROPOSED = (*WRITTEN, "named_user")


def apply_subscription_events(events: Sequence[Event], reread: Reread | None) -> None:
    """Apply subscription events (oldest first) as one by one would, in a few statements."""
    grouped: dict[str, list[Event]] = {}
    for event in events:
        grouped.setdefault(event[0]["id"], []).append(event)
    winners: list[Event] = []
    for group in grouped.values():
        winner = group[0] if len(group) == 1 else newest_of(group)
        if winner is None:  # two in one second that differ: re-read, as one by one would
            for subscription, created in group:
                apply_subscription(subscription, event_created=created, reread=reread)
        else:
            winners.append(winner)
    if winners:
        _apply_winners(sorted(winners, key=lambda event: str(event[0]["id"])), reread)


def _apply_winners(winners: list[Event], reread: Reread | None) -> None:
    params = [store_params(subscription, created) for subscription, created in winners]
    _lock_owners(params)
    written = {stored.subscription_id: stored for stored in _store_many(params)}
    new_owners: list[tuple[Stored, StripeDict, int]] = []
    mirrored: list[tuple[Stored, StripeDict]] = []
    rest: list[Pending] = []
    declined: list[Event] = []
    for (subscription, created), proposed in zip(winners, params, strict=True):
        stored = written.get(subscription["id"])
        named = proposed["named_user"]
        if stored is None:
            declined.append((subscription, created))
        elif stored.previous_owner is not None:
            rest.append((stored, subscription, created))
        elif stored.user_id is None and named and stored.customer_id:
            new_owners.append((stored, subscription, created))
        elif (
            stored.user_id is not None
            and not stored.summary_stale
            and named in (None, stored.user_id)
        ):
            mirrored.append((stored, subscription))
        else:
            rest.append((stored, subscription, created))
    rest.extend(_to_reread(declined))
    rest.extend(create_owners(new_owners))
    _check_live_once(mirrored)
    for stored, subscription, created in rest:
        finish_applying(stored, subscription, created, reread)


# -- the upsert ---------------------------------------------------------------------------------


@functools.cache
def _store_many_statement(dialect: str) -> Any:
    """The guarded upsert of many proposed rows, built once per process."""
    types = {name: subscriptions.c[name].type for name in WRITTEN} | {"named_user": String()}
    proposed: Any
    if dialect == "postgresql":
        arrays = [cast(bindparam(n, type_=ARRAY(types[n])), ARRAY(types[n])) for n in _PROPOSED]
        proposed = (
            func.unnest(*arrays)
            .table_valued(*(column(name, types[name]) for name in _PROPOSED))
            .render_derived(name="proposed")
        )
        values = [proposed.c[name] for name in _PROPOSED]
    else:  # one JSON array of rows: json_each gives each, json_extract its columns
        each = func.json_each(bindparam("rows", type_=String)).table_valued("value")
        values = [
            func.json_extract(each.c.value, f"$[{i}]", type_=types[name]).label(name)
            for i, name in enumerate(_PROPOSED)
        ]
        proposed = select(*values).subquery("proposed")
        values = [proposed.c[name] for name in _PROPOSED]
    source = dict(zip(_PROPOSED, values, strict=True))
    rows = select(
        *(source[name] for name in WRITTEN),
        owner_id(source["customer_id"], source["named_user"]).label("user_id"),
    ).where(true())  # SQLite: WHERE tells the SELECT from the upsert's ON CONFLICT
    statement = insert_for(dialect, subscriptions).from_select([*WRITTEN, "user_id"], rows)
    return guarded(statement, dialect, True, many=True)


def _store_many(params: list[dict[str, Any]]) -> list[Stored]:
    dialect = dialect_name()
    statement = _store_many_statement(dialect)
    result: Any
    if dialect == "postgresql":
        arrays = {name: [p[name] for p in params] for name in _PROPOSED}
        result = execute_prebuilt(statement, arrays)
    else:
        result = db.session.execute(statement, {"rows": _json_rows(params)})
    return [stored for row in result.all() if (stored := stored_from(row)) is not None]


def _json_rows(params: list[dict[str, Any]]) -> str:
    """The rows as SQLite stores their values (each column type's own conversion)."""
    dialect = db.engine.dialect
    processors = [
        subscriptions.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if name in WRITTEN
        else None
        for name in _PROPOSED
    ]
    return json.dumps(
        [
            [
                p[name] if f is None else f(p[name])
                for name, f in zip(_PROPOSED, processors, strict=True)
            ]
            for p in params
        ]
    )


@functools.cache
def _lock_statement() -> Any:
    names = cast(bindparam("names", type_=ARRAY(String)), ARRAY(String))
    customers = cast(bindparam("customers", type_=ARRAY(String)), ARRAY(String))
    return (
        select(users.c.id)
        .where(or_(users.c.stripe_customer_id == any_(customers), users.c.id == any_(names)))
        .order_by(users.c.id)
        .with_for_update()
    )


def _lock_owners(params: list[dict[str, Any]]) -> None:
    """`store.lock_owner` for every winner in one statement (PostgreSQL; SQLite's writers
    queue on BEGIN IMMEDIATE): the users linked to their customers or named by them, by id."""
    if dialect_name() != "postgresql":
        return
    customers = [p["customer_id"] for p in params if p["customer_id"]]
    names = [p["named_user"] for p in params if p["named_user"]]
    if customers or names:
        execute_prebuilt(_lock_statement(), {"customers": customers, "names": names})


# -- what the upsert declined ------------------------------------------------------------------


def _to_reread(declined: list[Event]) -> list[Pending]:
    """The winners the upsert wrote nothing for (older than the row's watermark, or the same as
    the row), judged against their rows read in one statement, as `store.finish_applying`
    judges one: only those the rule re-reads (the same second, a different object) take one
    event's path; the rest change nothing. Late events were two statements each before: a
    delivery order that put one stream of events behind another (all of them late) held
    batches of 200 for 2 s (docs/performance.md)."""
    if not declined:
        return []
    statement = select(subscriptions.c.id, *_JUDGED).where(
        subscriptions.c.id.in_([subscription["id"] for subscription, _ in declined])
    )
    if dialect_name() == "postgresql":  # still locked by the upsert; read as locked rows are
        statement = statement.order_by(subscriptions.c.id).with_for_update()
    rows = {row.id: row for row in db.session.execute(statement)}
    rest: list[Pending] = []
    for subscription, created in declined:
        row = rows.get(subscription["id"])
        if row is None or judge_event(_held(row), subscription, created) is Verdict.REREAD:
            rest.append((None, subscription, created))
    return rest


_FIELDS = tuple(subscription_fields({}))
_JUDGED = (subscriptions.c.last_event_created, *(subscriptions.c[name] for name in _FIELDS))


def _held(row: Any) -> Snapshot:
    """A stored row as `judge_event` reads it."""
    return Snapshot({name: getattr(row, name) for name in _FIELDS}, row.last_event_created)


# -- owners whose summary already mirrors the state -------------------------------------------


def _check_live_once(mirrored: Iterable[tuple[Stored, StripeDict]]) -> None:
    """`check_once_for_duplicates` for all of them: one read of their owners' live
    subscriptions (a second live one means the user pays twice)."""
    checked: set[str] = db.session.info.setdefault(LIVE_CHECKED, set())
    owners = set()
    for stored, subscription in mirrored:
        if subscription.get("status") in LIVE_STATUSES and stored.subscription_id not in checked:
            checked.add(stored.subscription_id)
            owners.add(str(stored.user_id))
    if not owners:
        return
    live: dict[str, list[SubscriptionRow]] = {}
    if dialect_name() == "postgresql":
        rows: Any = execute_prebuilt(_live_statement(), {"owners": sorted(owners)})
    else:
        rows = db.session.execute(
            _live_columns().where(
                subscriptions.c.user_id.in_(sorted(owners)),
                subscriptions.c.status.in_(sorted(LIVE_STATUSES)),
            )
        )
    for row in rows:
        live.setdefault(row[0], []).append(SubscriptionRow(*row[1:]))
    for owner, found in live.items():
        report_duplicates(owner, live_among(found))


def _live_columns() -> Any:
    return select(subscriptions.c.user_id, *(subscriptions.c[n] for n in SUBSCRIPTION_FIELDS))


@functools.cache
def _live_statement() -> Any:
    """PostgreSQL: the owners as one array and the live statuses written in, so the text never
    changes and psycopg prepares it once (an IN list was re-rendered for every batch size)."""
    owners = cast(bindparam("owners", type_=ARRAY(String)), ARRAY(String))
    statuses: Any = literal_column(  # our own constants, never input
        "(" + ", ".join(f"'{status}'" for status in sorted(LIVE_STATUSES)) + ")"
    )
    return _live_columns().where(
        subscriptions.c.user_id == any_(owners),
        subscriptions.c.status.op("IN", is_comparison=True)(statuses),
    )
