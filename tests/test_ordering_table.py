"""The ordering rule as a table (app/billing/subscriptions/ordering.py), checked
twice: `judge_event` in Python, and `applies_in_sql`, the same rule inside the conditional
upsert, run on a real SQLite upsert. No app, no sandbox: milliseconds. The sandbox histories
(test_ordering.py, test_ordering_property.py) check the rule against Stripe's real event streams."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.dialects.sqlite import insert

from app.billing.subscriptions.ordering import Verdict, applies_in_sql, judge_event
from app.models import Subscription
from app.stripe.objects import subscription_fields

APPLY, SKIP, REREAD = Verdict.APPLY, Verdict.SKIP, Verdict.REREAD
WATERMARK = 1_000


def stripe_object(status: str, *, cancel: bool = False) -> dict[str, Any]:
    return {
        "id": "sub_t",
        "customer": "cus_t",
        "status": status,
        "cancel_at_period_end": cancel,
        "items": {
            "data": [
                {
                    "price": {"id": "price_t", "recurring": {"interval": "month"}},
                    "current_period_start": 100,
                    "current_period_end": 200,
                }
            ]
        },
    }


# (stored status, incoming status, incoming differs otherwise, event created) -> verdict
TABLE: list[tuple[str | None, str, bool, int, Verdict]] = [
    (None, "active", False, WATERMARK - 5, APPLY),  # no state yet
    ("active", "active", False, WATERMARK - 5, APPLY),  # identical: nothing to lose
    ("canceled", "active", False, WATERMARK + 5, SKIP),  # ended is final
    ("incomplete_expired", "active", False, WATERMARK + 5, SKIP),
    ("active", "canceled", False, WATERMARK - 5, APPLY),  # ending always applies
    ("past_due", "incomplete_expired", False, WATERMARK - 5, APPLY),
    ("active", "incomplete", False, WATERMARK + 5, SKIP),  # incomplete only comes first
    ("incomplete", "active", False, WATERMARK - 5, APPLY),
    ("active", "active", True, WATERMARK + 5, APPLY),  # newer snapshot
    ("active", "past_due", False, WATERMARK + 1, APPLY),
    ("active", "active", True, WATERMARK - 1, SKIP),  # older snapshot
    ("past_due", "active", False, WATERMARK - 60, SKIP),
    ("active", "active", True, WATERMARK, REREAD),  # same second, different
    ("active", "past_due", False, WATERMARK, REREAD),
]


def stored_row(status: str | None) -> Subscription:
    row = Subscription(id="sub_t", last_event_created=WATERMARK if status else None)
    if status is not None:
        for name, value in subscription_fields(stripe_object(status)).items():
            setattr(row, name, value)
    return row


def incoming(status: str, differs: bool) -> dict[str, Any]:
    return stripe_object(status, cancel=differs)


@pytest.mark.parametrize(("stored", "status", "differs", "created", "expected"), TABLE)
def test_judge_event(
    stored: str | None, status: str, differs: bool, created: int, expected: Verdict
) -> None:
    assert judge_event(stored_row(stored), incoming(status, differs), created) is expected


@pytest.fixture(scope="module")
def engine() -> Any:
    engine = create_engine("sqlite://")
    Subscription.__table__.create(engine)  # type: ignore[attr-defined]
    return engine


@pytest.mark.parametrize(("stored", "status", "differs", "created", "expected"), TABLE)
def test_the_upsert_applies_exactly_when_judge_event_says_apply(
    engine: Any, stored: str | None, status: str, differs: bool, created: int, expected: Verdict
) -> None:
    table = Subscription.__table__
    row = stored_row(stored)
    columns = {c.name: getattr(row, c.name) for c in table.columns}  # type: ignore[attr-defined]
    columns = {name: value for name, value in columns.items() if value is not None}
    values = {
        **columns,
        **subscription_fields(incoming(status, differs)),
        "last_event_created": created,
    }
    with engine.begin() as conn:
        conn.execute(table.delete())
        conn.execute(table.insert().values(columns))
        statement = insert(table).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["id"],
            set_={"status": statement.excluded.status},
            where=applies_in_sql(table.c, statement.excluded),  # type: ignore[attr-defined]
        ).returning(table.c.id)  # type: ignore[attr-defined]
        applied = conn.execute(statement).first() is not None
    assert applied is (expected is APPLY)
