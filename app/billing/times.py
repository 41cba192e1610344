"""Stripe speaks seconds since the epoch; our API and tables speak milliseconds (as the guide)."""

from __future__ import annotations

import time
from typing import Any


def to_ms(seconds: Any) -> int | None:
    return int(seconds) * 1000 if isinstance(seconds, int | float) and seconds else None


def now_ms() -> int:
    return int(time.time() * 1000)
