"""Redirect targets (success, cancel, return URLs) must stay on our own front end."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal
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


Redirect = Literal["success", "cancel", "return"]

FRONT_END_PATHS: dict[Redirect, str] = {
    "success": "/billing/success?session_id={CHECKOUT_SESSION_ID}",
    "cancel": "/billing/cancel",
    "return": "/account",
}
DEMO_PATHS: dict[Redirect, str] = {
    "success": "/demo/success?session_id={CHECKOUT_SESSION_ID}",
    "cancel": "/demo/cancel",
    "return": "/demo/account",
}


def default_redirect(config: Mapping[str, Any], kind: Redirect) -> str:
    """Where Stripe sends the user back when the front end names no URL: in development the
    demo page this app serves (so `make run` -> pay lands on a real page), elsewhere the
    first front-end origin."""
    if config.get("APP_ENV") == "development":
        return str(config["PUBLIC_URL"]).rstrip("/") + DEMO_PATHS[kind]
    return str(config["FRONTEND_URLS"][0]).rstrip("/") + FRONT_END_PATHS[kind]
