"""Abuse limits: per user and per client IP on the routes that cost Stripe calls or quota, and
per IP on failed authentication. The webhook is never user-limited (Stripe's retries must get
through). Limits come from configuration (`RATE_LIMIT_*`, "10/minute;50/hour")."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, g, request
from limits import RateLimitItem, parse_many

from app.errors import ApiError
from app.extensions import rate_limits
from app.ratelimit_storage import hit_together

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# scope -> the setting with its per-user limits
USER_SCOPES = {
    "checkout": "RATE_LIMIT_CHECKOUT",
    "portal": "RATE_LIMIT_PORTAL",
    "change": "RATE_LIMIT_CHANGE",
    "refresh": "RATE_LIMIT_REFRESH",
    "usage": "RATE_LIMIT_USAGE",
}


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int, scope: str) -> None:
        super().__init__("Too many requests. Try again later.", details={"retryAfter": retry_after})
        self.retry_after = retry_after
        self.scope = scope
        self.headers["Retry-After"] = str(retry_after)


def client_ip() -> str:
    # ProxyFix (TRUSTED_PROXY_COUNT) has already put the real client's address here.
    return request.remote_addr or "unknown"


@functools.cache
def _parse(value: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(value)) if value.strip() else ()


def _items(setting: str) -> tuple[RateLimitItem, ...]:
    return _parse(str(current_app.config.get(setting) or ""))


def _enabled() -> bool:
    return bool(current_app.config.get("RATE_LIMIT_ENABLED"))


def _keys(*parts: str) -> tuple[str, ...]:
    # One namespace per deployment in a shared Redis (RATE_LIMIT_KEY_PREFIX).
    return (str(current_app.config.get("RATE_LIMIT_KEY_PREFIX") or "billing"), *parts)


def _retry_after(item: RateLimitItem, *keys: str) -> int:
    stats = rate_limits.guard().call(lambda: rate_limits.limiter().get_window_stats(item, *keys))
    if stats is None:  # the storage failed just now: a window's worth is a safe answer
        return max(1, int(item.get_expiry()))
    return max(1, math.ceil(stats.reset_time - time.time()))


def _counted(item: RateLimitItem, keys: tuple[str, ...]) -> bool:
    """Count one hit; False past the limit. The storage down (refused, hung): True, fail open,
    so the routes behind stay usable (the guard logs the outage once)."""
    allowed = rate_limits.guard().call(lambda: rate_limits.limiter().hit(item, *keys))
    return True if allowed is None else allowed


Check = tuple[str, str, RateLimitItem, tuple[str, ...]]  # scope, key kind, limit, its keys


def _checks(scope: str, setting: str, key_kind: str, key: str) -> list[Check]:
    return [(scope, key_kind, item, _keys(scope, key_kind, key)) for item in _items(setting)]


def _counted_together(checks: list[Check]) -> list[bool]:
    """Count one hit on each check's counter; False for those past their limit. On Redis all
    in one round trip (`hit_together`); the storage down: all True, fail open, as `_counted`."""
    limiter = rate_limits.limiter()
    keyed = [(item.key_for(*keys), item.get_expiry()) for _, _, item, keys in checks]
    counts = rate_limits.guard().call(lambda: hit_together(limiter.storage, keyed))
    if counts is None:
        return [True] * len(checks)
    return [count <= item.amount for count, (_, _, item, _) in zip(counts, checks, strict=True)]


def _breach(scope: str, key_kind: str, retry_after: int) -> RateLimited:
    g.rate_limited = scope
    log.warning(
        "rate limit hit: scope=%s by=%s ip=%s path=%s", scope, key_kind, client_ip(), request.path
    )
    for hook in current_app.extensions.get("rate_limit_breach_hooks", []):
        try:
            hook(scope, key_kind)
        except Exception:
            log.exception("rate limit breach hook failed")
    return RateLimited(retry_after, scope)


def _hit(scope: str, setting: str, key_kind: str, key: str) -> None:
    for item in _items(setting):
        keys = _keys(scope, key_kind, key)
        if not _counted(item, keys):
            raise _breach(scope, key_kind, _retry_after(item, *keys))


def enforce(scope: str, user_id: str) -> None:
    """Count one request of `user_id` in `scope` and one from the client's IP; 429 past either."""
    if not _enabled():
        return
    # Both counted whichever refuses (one Redis round trip for all the counters), the user's
    # breach reported first.
    checks = _checks(scope, USER_SCOPES[scope], "user", user_id)
    checks += _checks("ip", "RATE_LIMIT_IP", "ip", client_ip())
    for (check_scope, key_kind, item, keys), allowed in zip(
        checks, _counted_together(checks), strict=True
    ):
        if not allowed:
            raise _breach(check_scope, key_kind, _retry_after(item, *keys))


def enforce_ip(scope: str, setting: str) -> None:
    """Count one request from the client's IP in `scope`, for routes with no user yet (signing
    in): `setting` names its limits; the general per-IP limit applies too."""
    if not _enabled():
        return
    _hit(scope, setting, "ip", client_ip())
    _hit("ip", "RATE_LIMIT_IP", "ip", client_ip())


def rate_limited(scope: str, *, when: Callable[[], bool] | None = None) -> Callable[[F], F]:
    """Decorate a view (inside `login_required`, so the user is known)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if when is None or when():
                enforce(scope, g.user.id)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def count_failed_auth() -> None:
    """After a token or cookie failed to verify: count the failure against the client's IP and
    refuse with 429 once its budget is spent. Only failures are counted or refused, so a good
    token from an address shared with a guesser (an office, a carrier's NAT) still gets in."""
    if not _enabled():
        return
    ip = client_ip()
    for item in _items("RATE_LIMIT_FAILED_AUTH"):
        keys = _keys("auth", "ip", ip)
        if not _counted(item, keys):
            raise _breach("failed_auth", "ip", _retry_after(item, *keys))
