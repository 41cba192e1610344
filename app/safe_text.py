"""Strings from outside (bodies, paths, token claims, Stripe events) that the rest of the app,
the database and the logs can't take: NUL and other control characters, lone surrogates.

PostgreSQL rejects NUL in TEXT and `\\u0000` in JSONB; psycopg can't encode a lone surrogate;
CR/LF in a log line forges lines. Requests carrying them are refused up front; Stripe's events
are stored in a form the database always accepts (`db_safe`)."""

from __future__ import annotations

import re
from typing import Any

# C0 controls, DEL, C1 controls and UTF-16 surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Free text (metadata values) may carry tabs and line breaks; NUL and surrogates never.
_UNSAFE_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def has_unsafe_chars(value: str, *, free_text: bool = False) -> bool:
    return (_UNSAFE_IN_TEXT if free_text else _UNSAFE).search(value) is not None


def db_safe(value: Any) -> Any:
    """A copy of a JSON value with NUL and lone surrogates replaced (keys too)."""
    if isinstance(value, str):
        return _DB_UNSAFE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {db_safe(str(key)): db_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [db_safe(item) for item in value]
    return value


_DB_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def for_log(value: object, limit: int = 500) -> str:
    """One log-safe line: control characters escaped, long values cut."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return _UNSAFE.sub(
        lambda m: m.group().encode("unicode_escape", "backslashreplace").decode(), text
    )
