"""Monthly usage periods anchored at sign-up, the way Stripe anchors a billing cycle.

Each period boundary is computed from the anchor (not from the previous boundary), so a user who
signed up on the 31st resets on Feb 28 (or 29) and then on Mar 31 again, never drifting.
"""

from __future__ import annotations

import calendar
from datetime import datetime

from app.billing.time import datetime_from_ms, ms_from_datetime


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
