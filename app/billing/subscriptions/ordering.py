"""Which copy of a subscription wins when webhook events arrive late, twice or shuffled.

Stripe stamps each event with `created` (whole seconds) and promises no delivery order. A
subscription row keeps the `created` of the newest event applied to it (its watermark), and
an incoming event's object is judged against the row:

- the row has no state yet, or the object is identical to the row: apply (nothing to lose);
- `canceled`/`incomplete_expired` are final: such an object always applies, and nothing
  applies over it (Stripe never revives a subscription);
- `incomplete` only ever comes first: an `incomplete` object never replaces a later status,
  and any other status replaces an `incomplete` row;
- created after the watermark: apply, the object is a newer snapshot;
- created before the watermark: skip, we already hold a newer snapshot;
- created in the same second with a different object: the order is unknowable from the
  events alone, so re-read the subscription from Stripe (the only Stripe call a webhook makes).

The common flows (checkout, renewal, cancel and resume, a price swap, deletion) produce at most
one subscription event per second apart from checkout's `incomplete` -> `active` pair, which
the `incomplete` rule orders, so in-order delivery never costs a Stripe call.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, literal_column, not_, or_, tuple_

from app.billing.statuses import ENDED_STATUSES, StatusFacts
from app.models import Subscription
from app.stripe.objects import subscription_fields

StripeDict = dict[str, Any]


class Verdict(Enum):
    APPLY = "apply"
    SKIP = "skip"
    REREAD = "reread"


def row_matches(row: Subscription | Snapshot, subscription: StripeDict) -> bool:
    """True when applying `subscription` would not change any stored column."""
    return all(
        getattr(row, name) == value for name, value in subscription_fields(subscription).items()
    )


class Snapshot(StatusFacts):
    """An event's object as a row holding it would read (what `judge_event` looks at), for
    judging a subscription's events against each other before any is written (`newest_of`)."""

    status: str | None
    last_event_created: int | None

    def __init__(self, fields: dict[str, Any], watermark: int | None) -> None:
        self.__dict__.update(fields)
        self.last_event_created = watermark


def newest_of(events: Sequence[tuple[StripeDict, int]]) -> tuple[StripeDict, int] | None:
    """One subscription's events (object, `created`), oldest first, folded into the one
    object that applying them one by one in that order would leave, and the watermark it would
    leave: each event judged by this rule against the one that won so far. None when two of
    them share a second and differ (the rule would re-read from Stripe): apply them one by one.

    For the histories Stripe produces (snapshots of one timeline: final statuses stay final,
    `incomplete` comes first) the winner then judged against the stored row gives what the
    events one by one would, whatever their order (tests/test_webhook_batch.py)."""
    winner, watermark = events[0]
    held = Snapshot(subscription_fields(winner), watermark)
    for incoming, created in events[1:]:
        verdict = judge_event(held, incoming, created)
        if verdict is Verdict.REREAD:
            return None
        if verdict is Verdict.APPLY:
            winner, watermark = incoming, max(watermark, created)
            held = Snapshot(subscription_fields(incoming), watermark)
    return winner, watermark


def judge_event(
    row: Subscription | Snapshot, subscription: StripeDict, event_created: int
) -> Verdict:
    """Decide what to do with a subscription object carried by an event created at
    `event_created`, given the row as it is now (locked by the caller).

    `applies_in_sql` is the same rule for the write itself; a table-driven test holds the
    two to the same answers."""
    incoming = subscription.get("status")
    if not row.has_state or row_matches(row, subscription):
        return Verdict.APPLY
    if row.has_ended:
        return Verdict.SKIP
    if incoming in ENDED_STATUSES:
        return Verdict.APPLY
    if incoming == "incomplete" and row.status != "incomplete":
        return Verdict.SKIP
    if row.status == "incomplete" and incoming != "incomplete":
        return Verdict.APPLY
    watermark = row.last_event_created
    if watermark is None or event_created > watermark:
        return Verdict.APPLY
    if event_created < watermark:
        return Verdict.SKIP
    return Verdict.REREAD


def applies_in_sql(row: Any, incoming: Any) -> ColumnElement[bool]:
    """`judge_event`'s APPLY as a condition on the stored row (`row`, the table) and the
    incoming values (`incoming`, the upsert's `excluded`), so one conditional upsert both
    decides and writes, on the row it locks. Where `judge_event` would REREAD this is false:
    the caller then locks the row and asks `judge_event` (rare: same second, different)."""
    status = func.coalesce(incoming.status, literal(""))
    watermark = row.last_event_created
    return or_(
        row.status.is_(None),
        matches_in_sql(row, incoming),
        and_(
            not_(has_ended_in_sql(row.status)),
            or_(
                has_ended_in_sql(status),
                and_(row.status == "incomplete", status != "incomplete"),
                and_(
                    not_(and_(status == "incomplete", row.status != "incomplete")),
                    or_(watermark.is_(None), incoming.last_event_created > watermark),
                ),
            ),
        ),
    )


def matches_in_sql(row: Any, incoming: Any) -> ColumnElement[bool]:
    """`row_matches` in SQL: no column the object maps to would change. One row comparison
    (`(a, b, ...) IS NOT DISTINCT FROM (x, y, ...)`): the guarded upsert has it twice, and the
    driver parses the statement's text on every execution."""
    names = subscription_fields({})
    return tuple_(*(getattr(row, name) for name in names)).is_not_distinct_from(
        tuple_(*(getattr(incoming, name) for name in names))
    )


# Our own constants, written into the SQL once: a bound list would be expanded again on every
# execution, and the statement rebuilt.
_ENDED_SQL: ColumnElement[Any] = literal_column(
    "(" + ", ".join(f"'{status}'" for status in sorted(ENDED_STATUSES)) + ")"
)


def has_ended_in_sql(status: Any) -> ColumnElement[bool]:
    """`status IN ('canceled', 'incomplete_expired')` (NULL for a NULL status, like IN)."""
    return status.op("IN", is_comparison=True)(_ENDED_SQL)
