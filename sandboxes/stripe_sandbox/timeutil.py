"""Wall time and calendar arithmetic for billing periods."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime, timedelta


def wall_now() -> int:
    return int(time.time())


def _add_months(anchor: datetime, months: int) -> datetime:
    total = anchor.month - 1 + months
    year = anchor.year + total // 12
    month = total % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def add_interval(anchor_ts: int, interval: str, count: int, n: int = 1) -> int:
    """``anchor + n * count intervals`` in UTC calendar terms.

    Months and years keep the anchor's day of month, clamped to the month's
    last day (Jan 31 -> Feb 28 -> Mar 31), as Stripe does.
    """
    anchor = datetime.fromtimestamp(anchor_ts, tz=UTC)
    steps = count * n
    if interval == "day":
        result = anchor + timedelta(days=steps)
    elif interval == "week":
        result = anchor + timedelta(weeks=steps)
    elif interval == "month":
        result = _add_months(anchor, steps)
    elif interval == "year":
        result = _add_months(anchor, 12 * steps)
    else:
        raise ValueError(f"unknown interval {interval!r}")
    return int(result.timestamp())


def period_containing(anchor_ts: int, interval: str, count: int, at: int) -> tuple[int, int]:
    """The billing period ``[start, end)`` built from ``anchor`` that contains ``at``."""
    n = 0
    start = anchor_ts
    end = add_interval(anchor_ts, interval, count, 1)
    while end <= at:
        n += 1
        start = end
        end = add_interval(anchor_ts, interval, count, n + 1)
    return start, end


def next_period_end(anchor_ts: int, interval: str, count: int, period_start: int) -> int:
    """End of the period that starts at ``period_start`` on the anchor's calendar."""
    n = 1
    while True:
        end = add_interval(anchor_ts, interval, count, n)
        if end > period_start:
            return end
        n += 1
