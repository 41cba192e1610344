"""Time conversions in one place. Stripe speaks seconds since the epoch; our API and tables
speak milliseconds (as the guide); the timestamps we stamp ourselves are aware datetimes."""

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
