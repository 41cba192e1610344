"""The grace policy, plan lookup, the plans file format and the monthly periods, on their own:
pure functions of their inputs (no database, no clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import create_app
from app.billing.plans import DEFAULT_PLANS, load_plans, parse_plans
from app.billing.time import add_months, monthly_period_containing
from app.billing.time import datetime_from_ms as to_datetime
from app.billing.time import ms_from_datetime as to_ms
from app.billing.usage.entitlements import (
    DAY_MS,
    SubscriptionState,
    decide_access,
    entitlements_for,
    past_due_since,
    remaining,
)
from app.config import ConfigError

NOW = 1_800_000_000_000
PERIOD_END = NOW + 10 * DAY_MS
CONFIG = {"STRIPE_PRICE_ID_MONTHLY": "price_month", "STRIPE_PRICE_ID_YEARLY": "price_year"}


def state(status: str | None, **fields: object) -> SubscriptionState:
    values: dict[str, object] = {
        "price_id": "price_month",
        "current_period_start": NOW - 20 * DAY_MS,
        "current_period_end": PERIOD_END,
    }
    values.update(fields)
    return SubscriptionState(status=status, **values)  # type: ignore[arg-type]


# -- the grace policy ------------------------------------------------------------------------------


def test_no_subscription_is_free() -> None:
    assert decide_access(None, NOW, None).paid is False


@pytest.mark.parametrize("status", ["active", "trialing", "past_due"])
def test_statuses_that_keep_the_paid_plan(status: str) -> None:
    access = decide_access(state(status), NOW, None)
    assert access.paid is True and access.ends_at is None


@pytest.mark.parametrize(
    "status", ["canceled", "unpaid", "incomplete_expired", "incomplete", "paused", "weird"]
)
def test_every_other_status_is_free_at_once(status: str) -> None:
    access = decide_access(state(status), NOW, None)
    assert access.paid is False and access.reason == status


def test_past_due_is_kept_while_stripe_retries_when_no_grace_days_are_set() -> None:
    long_ago = state("past_due", past_due_since=NOW - 400 * DAY_MS)
    assert decide_access(long_ago, NOW, None).paid is True


def test_past_due_grace_counts_days_from_when_it_started() -> None:
    since = NOW - 2 * DAY_MS
    inside = decide_access(state("past_due", past_due_since=since), NOW, 3)
    assert inside.paid is True and inside.reason == "past_due_grace"
    assert inside.ends_at == since + 3 * DAY_MS
    at_end = decide_access(state("past_due", past_due_since=since), since + 3 * DAY_MS, 3)
    assert at_end.paid is False and at_end.reason == "past_due_grace_over"
    assert decide_access(state("past_due", past_due_since=since), NOW, 0).paid is False


def test_past_due_with_unknown_start_gets_the_whole_grace() -> None:
    access = decide_access(state("past_due", past_due_since=None), NOW, 3)
    assert access.paid is True and access.ends_at == NOW + 3 * DAY_MS


def test_pending_cancel_keeps_the_plan_until_the_period_end_and_not_after() -> None:
    pending = state("active", cancel_at_period_end=True)
    before = decide_access(pending, PERIOD_END - 1, None)
    assert before.paid is True and before.reason == "pending_cancel"
    assert before.ends_at == PERIOD_END
    # Stripe's customer.subscription.deleted may be late: the period end decides, not the status.
    after = decide_access(pending, PERIOD_END, None)
    assert after.paid is False and after.reason == "cancellation_effective"


def test_cancel_at_a_date_ends_the_plan_at_that_date() -> None:
    scheduled = state("trialing", cancel_at=NOW + DAY_MS)
    assert decide_access(scheduled, NOW, None).ends_at == NOW + DAY_MS
    assert decide_access(scheduled, NOW + DAY_MS, None).paid is False


def test_past_due_grace_and_pending_cancel_end_at_whichever_comes_first() -> None:
    both = state("past_due", past_due_since=NOW, cancel_at_period_end=True)
    assert decide_access(both, NOW, 30).ends_at == PERIOD_END
    assert decide_access(both, NOW, 2).ends_at == NOW + 2 * DAY_MS


def test_past_due_since_is_kept_during_the_spell_and_cleared_after() -> None:
    assert past_due_since("past_due", None, NOW) == NOW
    assert past_due_since("past_due", NOW - 5, NOW) == NOW - 5
    assert past_due_since("active", NOW - 5, NOW) is None


# -- plans -----------------------------------------------------------------------------------------


def test_default_plans_are_ten_free_generations_and_unlimited_pro() -> None:
    plans = parse_plans(DEFAULT_PLANS)
    assert plans.free.generations == 10
    assert [p.id for p in plans.paid] == ["pro"] and plans.paid[0].unlimited
    # A finite grace by default: past due for a week, then free until the card is fixed.
    assert plans.grace.past_due_days == 7
    lapsed = state("past_due", price_id="price_year", past_due_since=NOW - 7 * DAY_MS)
    assert entitlements_for(lapsed, plans, NOW, CONFIG).tier == "free"
    within = state("past_due", price_id="price_year", past_due_since=NOW - 6 * DAY_MS)
    assert entitlements_for(within, plans, NOW, CONFIG).tier == "pro"
    assert parse_plans({**DEFAULT_PLANS, "grace": {}}).grace.past_due_days == 7
    unbounded = parse_plans({**DEFAULT_PLANS, "grace": {"pastDueDays": None}})
    assert entitlements_for(lapsed, unbounded, NOW, CONFIG).tier == "pro"
    free = entitlements_for(None, plans, NOW, CONFIG)
    assert (free.tier, free.limit) == ("free", 10)
    yearly = entitlements_for(state("active", price_id="price_year"), plans, NOW, CONFIG)
    assert (yearly.tier, yearly.limit) == ("pro", None)
    assert "hd_quality" in yearly.plan.features and "hd_quality" not in free.plan.features


def custom_plans() -> dict[str, object]:
    return {
        "plans": {
            "free": {"generationsPerPeriod": 3, "features": ["generate"]},
            "pro": {"prices": ["monthly"], "generationsPerPeriod": 500, "features": ["hd"]},
            "studio": {"prices": ["price_studio", "yearly"], "generationsPerPeriod": None},
        },
        "grace": {"pastDueDays": 7},
    }


def test_a_price_buys_its_plan_and_an_unlisted_price_the_first_paid_plan() -> None:
    plans = parse_plans(custom_plans())
    pick = lambda price: entitlements_for(state("active", price_id=price), plans, NOW, CONFIG)  # noqa: E731
    assert (pick("price_month").tier, pick("price_month").limit) == ("pro", 500)
    assert (pick("price_year").tier, pick("price_year").limit) == ("studio", None)
    assert pick("price_studio").tier == "studio"
    assert pick("price_legacy").tier == "pro"
    assert plans.grace.past_due_days == 7
    lapsed = state("past_due", price_id="price_studio", past_due_since=NOW - 8 * DAY_MS)
    assert entitlements_for(lapsed, plans, NOW, CONFIG).tier == "free"


def test_aliases_follow_the_settings_at_lookup_time() -> None:
    plans = parse_plans(custom_plans())
    yearly = state("active", price_id="price_year")
    assert entitlements_for(yearly, plans, NOW, CONFIG).tier == "studio"
    moved = {**CONFIG, "STRIPE_PRICE_ID_YEARLY": "price_year_2027"}
    assert entitlements_for(yearly, plans, NOW, moved).tier == "pro"  # no longer listed
    renamed = state("active", price_id="price_year_2027")
    assert entitlements_for(renamed, plans, NOW, moved).tier == "studio"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["plans"].pop("free"), 'a plan named "free" is required'),
        (lambda d: d["plans"]["free"].update(prices=["monthly"]), "cannot have prices"),
        (lambda d: d["plans"]["pro"].update(prices=[]), "lists no prices"),
        (lambda d: d["plans"]["pro"].update(prices=["yearly"]), "is in plans"),
        (lambda d: d["plans"]["pro"].update(generationsPerPeriod=-1), "greater than or equal"),
        (lambda d: d["plans"]["pro"].update(generationsPerPeriod=True), "valid integer"),
        (lambda d: d["plans"]["pro"].update(generationsPerPeriod="10"), "valid integer"),
        (lambda d: d["plans"]["pro"].update(limit=3), "Extra inputs"),
        (lambda d: d["grace"].update(pastDueDays=-2), "pastDueDays"),
        (lambda d: d["plans"].update({"bad name": d["plans"].pop("pro")}), "plan name"),
        (lambda d: d["plans"].update(free=None), "plans.free"),
    ],
)
def test_a_bad_plans_document_is_refused_with_a_clear_message(change, message: str) -> None:  # type: ignore[no-untyped-def]
    document = custom_plans()
    change(document)
    with pytest.raises(ValueError, match=message):
        parse_plans(document)


def test_plans_file_is_read_and_its_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "plans.json"
    good.write_text(json.dumps(custom_plans()))
    assert load_plans(str(good)).free.generations == 3
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match=r"broken\.json: not valid JSON"):
        load_plans(str(broken))
    with pytest.raises(ConfigError, match="cannot read it"):
        load_plans(str(tmp_path / "missing.json"))


def test_a_bad_plans_file_stops_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "plans.json"
    bad.write_text(json.dumps({"plans": {"pro": {"prices": ["x"], "generationsPerPeriod": 1}}}))
    with pytest.raises(ConfigError, match='a plan named "free" is required'):
        create_app(
            {
                "APP_ENV": "testing",
                "DATABASE_URL": "sqlite://",
                "STRIPE_SECRET_KEY": "sk_test_unused",
                "PLANS_FILE": str(bad),
            }
        )


def test_remaining_never_goes_negative() -> None:
    assert remaining(3, 10) == 7
    assert remaining(12, 10) == 0
    assert remaining(12, None) is None


# -- monthly periods from sign-up ------------------------------------------------------------------


def ms(*parts: int) -> int:
    return to_ms(datetime(*parts, tzinfo=UTC))  # type: ignore[misc]


def test_months_are_counted_from_the_anchor_without_drifting() -> None:
    anchor = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
    assert add_months(anchor, 1) == datetime(2026, 2, 28, 9, 30, tzinfo=UTC)
    assert add_months(anchor, 2) == datetime(2026, 3, 31, 9, 30, tzinfo=UTC)
    assert add_months(anchor, 13) == datetime(2027, 2, 28, 9, 30, tzinfo=UTC)
    assert add_months(datetime(2027, 12, 31, tzinfo=UTC), 2) == datetime(2028, 2, 29, tzinfo=UTC)


def test_the_period_containing_now() -> None:
    anchor = ms(2026, 1, 31, 9, 30)
    assert monthly_period_containing(anchor, anchor) == (anchor, ms(2026, 2, 28, 9, 30))
    assert monthly_period_containing(anchor, ms(2026, 3, 15)) == (
        ms(2026, 2, 28, 9, 30),
        ms(2026, 3, 31, 9, 30),
    )
    # Just before a boundary is still the old period; the boundary itself starts the new one.
    boundary = ms(2026, 3, 31, 9, 30)
    assert monthly_period_containing(anchor, boundary - 1)[1] == boundary
    assert monthly_period_containing(anchor, boundary)[0] == boundary
    # A clock a little behind the sign-up time gets the first period, not an earlier one.
    assert monthly_period_containing(anchor, anchor - 5000)[0] == anchor


def test_milliseconds_survive_the_round_trip() -> None:
    assert to_ms(to_datetime(1_700_000_000_123)) == 1_700_000_000_123
    assert to_ms(datetime(2026, 1, 1)) == ms(2026, 1, 1)  # naive (SQLite) means UTC


@given(
    anchor=st.integers(min_value=ms(2000, 1, 1), max_value=ms(2090, 1, 1)),
    offset=st.integers(min_value=0, max_value=5 * 366 * DAY_MS),
)
def test_every_instant_falls_in_exactly_one_month_long_period(anchor: int, offset: int) -> None:
    now = anchor + offset
    start, end = monthly_period_containing(anchor, now)
    assert start <= now < end
    assert 28 * DAY_MS <= end - start <= 31 * DAY_MS
    assert monthly_period_containing(anchor, end)[0] == end  # periods tile with no gap
    assert monthly_period_containing(anchor, start) == (start, end)
