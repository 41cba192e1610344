"""Error tracking with sentry-sdk's Flask integration, on only when `SENTRY_DSN` is set.

Events carry the request id (tag `request_id`) and are scrubbed before they leave: bearer
tokens, cookies, Stripe keys and webhook secrets, JWTs, and any value under a secret-looking key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from app.observability.request_id import current_request_id

FILTERED = "[Filtered]"
_SECRET_KEYS = re.compile(
    r"(authorization|cookie|token|secret|password|passwd|api[_-]?key|signature|dsn|"
    r"stripe[_-]signature|session)",
    re.IGNORECASE,
)
_SECRET_VALUES = re.compile(
    r"(sk|rk|pk)_(test|live)_[A-Za-z0-9_]+"  # Stripe API keys
    r"|whsec_[A-Za-z0-9_]+"  # webhook signing secrets
    r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # JWTs
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"
)


def scrub(value: Any, key: str = "") -> Any:
    """A copy of `value` with secrets replaced (keys that name secrets, values that are)."""
    if key and _SECRET_KEYS.search(key) and isinstance(value, str | bytes | int):
        return FILTERED
    if isinstance(value, Mapping):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return _SECRET_VALUES.sub(FILTERED, value)
    return value


def before_send(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    request_id = current_request_id()
    if request_id:
        event.setdefault("tags", {})["request_id"] = request_id
    return scrub(event)


def init_sentry(config: Mapping[str, Any], **options: Any) -> bool:
    """Start sentry-sdk when SENTRY_DSN is set; `options` (e.g. a transport) are for tests."""
    dsn = config.get("SENTRY_DSN") or ""
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=config.get("SENTRY_ENVIRONMENT") or config.get("APP_ENV"),
        release=config.get("SENTRY_RELEASE") or None,
        traces_sample_rate=float(config.get("SENTRY_TRACES_SAMPLE_RATE") or 0.0),
        integrations=[FlaskIntegration()],
        before_send=before_send,  # type: ignore[arg-type]
        before_send_transaction=before_send,  # type: ignore[arg-type]
        **options,
    )
    return True


def capture_exception(error: BaseException) -> None:
    """Report an error the app answered itself (its 500 handler), when Sentry is on."""
    import sentry_sdk

    if sentry_sdk.get_client().is_active():
        sentry_sdk.capture_exception(error)
