"""Time in one place. Stripe speaks seconds since the epoch; our API and tables speak
milliseconds (the published API's unit); the timestamps we stamp ourselves are aware
datetimes.

Monthly periods are anchored the way Stripe anchors a billing cycle: each boundary is computed
from the anchor (not from the previous boundary), so a user who signed up on the 31st resets on
Feb 28 (or 29) and then on Mar 31 again, never drifting."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from typing import Any


def ms_from_seconds(seconds: Any) -> int | None:
    """A Stripe time (seconds; absent or 0 means none) in ms."""
    return int(seconds) * 1000 if isinstance(seconds, int | float) and seconds else None


def ms_from_datetime(moment: datetime) -> int:
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; we only ever store UTC
        moment = moment.replace(tzinfo=UTC)
    return calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000


def datetime_from_ms(ms: int) -> datetime:
    # Integer arithmetic: a float timestamp can round a millisecond away.
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=millis * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)


def add_months(anchor: datetime, months: int) -> datetime:
    index = anchor.year * 12 + (anchor.month - 1) + months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return anchor.replace(year=year, month=month + 1, day=min(anchor.day, last_day))


def monthly_period_containing(anchor_ms: int, now_ms: int) -> tuple[int, int]:
    """The [start, end) month-long period, counted from `anchor_ms`, that contains `now_ms`.

    A `now` before the anchor (clock skew between hosts) gets the first period."""
    anchor = datetime_from_ms(anchor_ms)
    now = datetime_from_ms(max(now_ms, anchor_ms))
    months = (now.year - anchor.year) * 12 + (now.month - anchor.month)
    if add_months(anchor, months) > now:
        months -= 1
    return ms_from_datetime(add_months(anchor, months)), ms_from_datetime(
        add_months(anchor, months + 1)
    )
