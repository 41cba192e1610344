"""Redirect targets (success, cancel, return URLs) must stay on our own front end."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from app.billing.errors import InvalidRequest


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}"


def ensure_allowed_url(url: str, allowed_origins: Iterable[str], *, field: str) -> str:
    parts = urlsplit(url)
    allowed = {origin_of(origin) for origin in allowed_origins}
    if parts.scheme not in ("http", "https") or not parts.netloc or origin_of(url) not in allowed:
        raise InvalidRequest(
            f"{field} must be on the application's own site.",
            code="redirect_not_allowed",
            details={"field": field},
        )
    return url


def default_url(allowed_origins: list[str], path: str) -> str:
    return allowed_origins[0].rstrip("/") + path
