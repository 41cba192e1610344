"""The renewal reset on its own, against the database: which invoices reset usage, which
period they start, and that replayed or late invoices never reset twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.billing.accounts.users import get_or_create_user
from app.billing.usage.periods import renewal_period, reset_usage_for_renewal
from app.extensions import db
from app.models import Subscription, UsageLedgerEntry, User

DAY = 86_400
JAN = 1_800_000_000  # four consecutive period boundaries, in Stripe's seconds
FEB, MAR, APR = JAN + 31 * DAY, JAN + 59 * DAY, JAN + 90 * DAY


def line(start: int, end: int, *, proration: bool = False) -> dict[str, Any]:
    return {
        "period": {"start": start, "end": end},
        "parent": {"subscription_item_details": {"proration": proration, "subscription": "sub_w"}},
    }


def invoice(
    start: int, end: int, *, reason: str = "subscription_cycle", lines: Any = None
) -> dict[str, Any]:
    return {
        "id": f"in_{start}",
        "billing_reason": reason,
        "customer": "cus_w",
        # The invoice's own period is the one that just ended; the line's is the new one.
        "period_start": start - 30 * DAY,
        "period_end": start,
        "parent": {"subscription_details": {"subscription": "sub_w"}},
        "lines": {"data": lines if lines is not None else [line(start, end)]},
    }


@pytest.fixture
def user(app: Flask, client: FlaskClient) -> Iterator[User]:
    with app.app_context():
        row = get_or_create_user("renewer")
        row.stripe_customer_id = "cus_w"
        row.subscription_tier = "pro"
        row.generations_used = 42
        row.usage_period_start, row.usage_period_end = JAN * 1000, FEB * 1000
        db.session.add(Subscription(id="sub_w", user_id="renewer", customer_id="cus_w"))
        db.session.commit()
        yield row


def state() -> tuple[int, int | None, int | None, list[tuple[str, int, str | None]]]:
    db.session.expire_all()
    row = db.session.get(User, "renewer")
    assert row is not None
    ledger = db.session.execute(
        select(UsageLedgerEntry.kind, UsageLedgerEntry.count, UsageLedgerEntry.reason)
    ).all()
    return row.generations_used, row.usage_period_start, row.usage_period_end, list(ledger)


def test_the_new_period_comes_from_the_subscription_lines_not_prorations() -> None:
    lines = [line(JAN + 3 * DAY, FEB, proration=True), line(FEB, MAR), line(JAN, FEB)]
    assert renewal_period(invoice(FEB, MAR, lines=lines)) == (FEB * 1000, MAR * 1000)
    assert renewal_period(invoice(FEB, MAR, lines=[])) is None
    assert renewal_period({"lines": {"data": [{"period": {"start": "x", "end": None}}]}}) is None


def test_a_paid_renewal_starts_the_new_period_from_zero(user: User) -> None:
    reset_usage_for_renewal(invoice(FEB, MAR))
    db.session.commit()
    assert state() == (0, FEB * 1000, MAR * 1000, [("reset", 42, "renewal")])


def test_replayed_or_older_renewals_do_not_reset_again(user: User) -> None:
    reset_usage_for_renewal(invoice(FEB, MAR))
    db.session.get(User, "renewer").generations_used = 5  # used since the renewal
    db.session.commit()
    reset_usage_for_renewal(invoice(FEB, MAR))  # the same renewal again
    reset_usage_for_renewal(invoice(JAN, FEB))  # an older one, arriving late
    db.session.commit()
    assert state()[:3] == (5, FEB * 1000, MAR * 1000)
    reset_usage_for_renewal(invoice(MAR, APR))  # the next one does
    db.session.commit()
    assert state()[:3] == (0, MAR * 1000, APR * 1000)


@pytest.mark.parametrize(
    "reason", ["subscription_create", "subscription_update", "manual", "upcoming", None]
)
def test_only_cycle_invoices_reset(user: User, reason: str | None) -> None:
    reset_usage_for_renewal(invoice(FEB, MAR, reason=reason))  # type: ignore[arg-type]
    db.session.commit()
    assert state() == (42, JAN * 1000, FEB * 1000, [])


def test_the_owner_is_found_by_customer_when_the_subscription_is_unknown(user: User) -> None:
    unknown_sub = invoice(FEB, MAR)
    unknown_sub["parent"] = {"subscription_details": {"subscription": "sub_not_ours_yet"}}
    reset_usage_for_renewal(unknown_sub)
    db.session.commit()
    assert state()[0] == 0


def test_a_renewal_for_nobody_we_know_changes_nothing(user: User) -> None:
    stranger = invoice(FEB, MAR)
    stranger["customer"] = "cus_stranger"
    stranger["parent"] = {"subscription_details": {"subscription": "sub_stranger"}}
    reset_usage_for_renewal(stranger)
    db.session.commit()
    assert state() == (42, JAN * 1000, FEB * 1000, [])
