"""Settings read from the environment, grouped by what they are about. A malformed value is
collected as a problem (named with its setting) rather than raised, so start-up reports every
problem of a deploy at once (`app/config.py` decides what is acceptable)."""

from __future__ import annotations

import os
from typing import Any

from app.signin.settings import signin_from_env

DEFAULT_API_VERSION = "2026-10-28.endive"
PROBLEMS = "_CONFIG_PROBLEMS"  # the key under which the problems travel to finalize_config


class _BadSetting(ValueError):
    pass


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise _BadSetting(f"{name} must be a whole number, not {raw!r}") from None


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise _BadSetting(f"{name} must be true or false, not {raw!r}")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise _BadSetting(f"{name} must be a number, not {raw!r}") from None


def _collected(read: Any, problems: list[str]) -> Any:
    """`read` (name, default) that records a malformed value in `problems` instead of raising."""

    def reader(name: str, default: Any) -> Any:
        try:
            return read(name, default)
        except _BadSetting as exc:
            problems.append(str(exc))
            return default

    return reader


def _env_csv(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


def config_from_env() -> dict[str, Any]:
    """The settings as the environment gives them; a malformed number is collected as a
    problem (`PROBLEMS`) so start-up reports it with all the others."""
    problems: list[str] = []

    def number(name: str, default: int) -> int:
        try:
            return _env_int(name, default)
        except _BadSetting as exc:
            problems.append(str(exc))
            return default

    def flag(name: str, default: bool) -> bool:
        try:
            return _env_bool(name, default)
        except _BadSetting as exc:
            problems.append(str(exc))
            return default

    port = number("PORT", 3001)
    config = {
        # None = unset (development); anything else must name an environment exactly.
        "APP_ENV": os.environ.get("APP_ENV"),
        "PORT": port,
        "PUBLIC_URL": os.environ.get("PUBLIC_URL", f"http://127.0.0.1:{port}"),
        # Empty = unset: development falls back to a SQLite file, production refuses.
        "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
        "FRONTEND_URLS": _env_csv("FRONTEND_URL", "http://localhost:5173"),
        # Stripe
        "STRIPE_SECRET_KEY": os.environ.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET", ""),
        "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE", ""),
        "STRIPE_API_VERSION": os.environ.get("STRIPE_API_VERSION", DEFAULT_API_VERSION),
        "STRIPE_MAX_NETWORK_RETRIES": number("STRIPE_MAX_NETWORK_RETRIES", 1),
        "STRIPE_PRICE_ID_MONTHLY": os.environ.get("STRIPE_PRICE_ID_MONTHLY", ""),
        "STRIPE_PRICE_ID_YEARLY": os.environ.get("STRIPE_PRICE_ID_YEARLY", ""),
        "STRIPE_PRICE_IDS": _env_csv("STRIPE_PRICE_IDS"),
        "STRIPE_WEBHOOK_TOLERANCE": number("STRIPE_WEBHOOK_TOLERANCE", 300),
        **invoicing_from_env(problems),
        **identity_from_env(problems),
        # Entitlements
        "PLANS_FILE": os.environ.get("PLANS_FILE", ""),
        # GET /api/plans re-reads Stripe's prices at most this often (and after price webhooks)
        "PLANS_CACHE_SECONDS": number("PLANS_CACHE_SECONDS", 300),
        **checkout_from_env(problems),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        **reliability_from_env(problems),
        **security_from_env(problems),
        "FLASK_DEBUG": flag("FLASK_DEBUG", False),
        **operations_from_env(),
    }
    config[PROBLEMS] = problems
    return config


PROBLEMS = "_CONFIGPROBLEMS"


def identity_from_env(problems: list[str]) -> dict[str, Any]:
    """Who may call: HS256 tokens a backend mints, an identity provider's JWKS, and Sign in
    with GitHub (app/signin/settings.py); docs/frontend.md says which to pick when."""
    whole = _collected(_env_int, problems)
    return {
        "AUTH_JWT_SECRET": os.environ.get("AUTH_JWT_SECRET", ""),
        "AUTH_JWKS_URL": os.environ.get("AUTH_JWKS_URL", ""),
        "AUTH_ISSUER": os.environ.get("AUTH_ISSUER", ""),
        "AUTH_AUDIENCE": os.environ.get("AUTH_AUDIENCE", ""),
        "AUTH_LEEWAY_SECONDS": whole("AUTH_LEEWAY_SECONDS", 30),
        "AUTH_MAX_TOKEN_LIFETIME_SECONDS": whole("AUTH_MAX_TOKEN_LIFETIME_SECONDS", 86400),
        **signin_from_env(whole),
    }


def operations_from_env() -> dict[str, Any]:
    """Logs, metrics, error tracking, prices by lookup key, the dev stack's info file
    (docs/operations.md)."""
    return {
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", ""),  # json | text; empty: json in production
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN", ""),  # bearer token for /metrics
        "SENTRY_DSN": os.environ.get("SENTRY_DSN", ""),
        "SENTRY_ENVIRONMENT": os.environ.get("SENTRY_ENVIRONMENT", ""),
        "SENTRY_RELEASE": os.environ.get("SENTRY_RELEASE", ""),
        "SENTRY_TRACES_SAMPLE_RATE": os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0"),
        # Prices by lookup key instead of id (resolved at start-up when the id is empty)
        "STRIPE_PRICE_LOOKUP_KEY_MONTHLY": os.environ.get("STRIPE_PRICE_LOOKUP_KEY_MONTHLY", ""),
        "STRIPE_PRICE_LOOKUP_KEY_YEARLY": os.environ.get("STRIPE_PRICE_LOOKUP_KEY_YEARLY", ""),
        # Written by bin/dev-stack (`make run`): its sandbox's settings, read in development
        # when no STRIPE_SECRET_KEY is set (app/dev_stack.py)
        "SANDBOX_INFO_FILE": os.environ.get("SANDBOX_INFO_FILE", ""),
    }


def security_from_env(problems: list[str]) -> dict[str, Any]:
    """Body caps, abuse limits, client IPs and CORS (docs/security.md)."""
    whole = _collected(_env_int, problems)
    switch = _collected(_env_bool, problems)
    fraction = _collected(_env_float, problems)
    return {
        # Request bodies: the API's JSON, and Stripe's events (checked before reading).
        "MAX_CONTENT_LENGTH": whole("MAX_CONTENT_LENGTH", 64 * 1024),
        "WEBHOOK_MAX_BYTES": whole("WEBHOOK_MAX_BYTES", 512 * 1024),
        # Abuse limits ("N/minute;M/hour", per user unless named _IP); storage in Redis when set.
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        # Every Redis call's connect and read timeout (ms): a Redis that accepts and never
        # answers costs a request this much once, then the limits are off (fail open) and
        # Redis is tried again after REDIS_RETRY_SECONDS.
        "REDIS_TIMEOUT_MS": whole("REDIS_TIMEOUT_MS", 50),
        "REDIS_RETRY_SECONDS": fraction("REDIS_RETRY_SECONDS", 5.0),
        "RATE_LIMIT_ENABLED": switch("RATE_LIMIT_ENABLED", True),
        "RATE_LIMIT_KEY_PREFIX": os.environ.get("RATE_LIMIT_KEY_PREFIX", "billing"),
        "RATE_LIMIT_CHECKOUT": os.environ.get("RATE_LIMIT_CHECKOUT", "10/minute;50/hour"),
        "RATE_LIMIT_PORTAL": os.environ.get("RATE_LIMIT_PORTAL", "10/minute;60/hour"),
        "RATE_LIMIT_CHANGE": os.environ.get("RATE_LIMIT_CHANGE", "10/minute;60/hour"),
        "RATE_LIMIT_REFRESH": os.environ.get("RATE_LIMIT_REFRESH", "6/minute;60/hour"),
        "RATE_LIMIT_USAGE": os.environ.get("RATE_LIMIT_USAGE", "120/minute"),
        "RATE_LIMIT_IP": os.environ.get("RATE_LIMIT_IP", "300/minute"),
        "RATE_LIMIT_FAILED_AUTH": os.environ.get("RATE_LIMIT_FAILED_AUTH", "30/minute"),
        # Per IP: starting and finishing GitHub sign-ins, renewing and signing out.
        "RATE_LIMIT_SIGNIN": os.environ.get("RATE_LIMIT_SIGNIN", "20/minute;200/hour"),
        "RATE_LIMIT_SESSION": os.environ.get("RATE_LIMIT_SESSION", "60/minute;600/hour"),
        # Client IPs: how many reverse proxies in front of us set X-Forwarded-For (0 = none).
        "TRUSTED_PROXY_COUNT": whole("TRUSTED_PROXY_COUNT", 0),
        # CORS: bearer tokens need no credentials mode; set true only for cookie sessions.
        "CORS_ALLOW_CREDENTIALS": switch("CORS_ALLOW_CREDENTIALS", False),
        "CORS_MAX_AGE": whole("CORS_MAX_AGE", 600),
    }


def checkout_from_env(problems: list[str]) -> dict[str, Any]:
    """Prices by lookup key and one checkout per user (issue 18; docs/reliability.md)."""
    whole = _collected(_env_int, problems)
    return {
        # Prices given by lookup key are read from Stripe on first need; after a failed read
        # the next waits this long (s), doubling per failure up to the maximum
        # (app/billing/price_lookup.py).
        "PRICE_LOOKUP_RETRY_SECONDS": whole("PRICE_LOOKUP_RETRY_SECONDS", 1),
        "PRICE_LOOKUP_RETRY_MAX_SECONDS": whole("PRICE_LOOKUP_RETRY_MAX_SECONDS", 60),
        # One checkout under way per user (a double click gets the same session back): a
        # session made this recently is handed back for the same price; a request waits this
        # long for another's session before answering 409 checkout_in_progress; a claim older
        # than CHECKOUT_CLAIM_SECONDS was abandoned (longer than the Stripe calls can take).
        "CHECKOUT_REUSE_SECONDS": whole("CHECKOUT_REUSE_SECONDS", 1800),
        "CHECKOUT_WAIT_SECONDS": whole("CHECKOUT_WAIT_SECONDS", 15),
        "CHECKOUT_CLAIM_SECONDS": whole("CHECKOUT_CLAIM_SECONDS", 60),
    }


# -- Reliability: bounded waits and the one-live-subscription rule (docs/reliability.md) -----------

DUPLICATE_POLICIES = ("flag", "cancel_newer")


def invoicing_from_env(problems: list[str]) -> dict[str, Any]:
    whole = _collected(_env_int, problems)
    flag = _collected(_env_bool, problems)
    return {
        # Checkout and tax (app/billing/invoices/tax.py): Stripe Tax computes VAT/sales tax,
        # the buyer may give a tax id, the billing address is required (and kept on the customer).
        "STRIPE_AUTOMATIC_TAX": flag("STRIPE_AUTOMATIC_TAX", False),
        "STRIPE_TAX_ID_COLLECTION": flag("STRIPE_TAX_ID_COLLECTION", False),
        "STRIPE_COLLECT_BILLING_ADDRESS": flag("STRIPE_COLLECT_BILLING_ADDRESS", False),
        # GET /api/invoices/upcoming asks Stripe at most this often per subscription (s).
        "UPCOMING_INVOICE_CACHE_SECONDS": whole("UPCOMING_INVOICE_CACHE_SECONDS", 300),
        # A one-time price sold as a credit pack (empty: none), and the generations it adds.
        "STRIPE_CREDIT_PACK_PRICE_ID": os.environ.get("STRIPE_CREDIT_PACK_PRICE_ID", ""),
        "CREDIT_PACK_GENERATIONS": whole("CREDIT_PACK_GENERATIONS", 100),
    }


def reliability_from_env(problems: list[str]) -> dict[str, Any]:
    whole = _collected(_env_int, problems)
    fraction = _collected(_env_float, problems)
    return {
        # Every Stripe call: connect and read timeouts (s); STRIPE_MAX_NETWORK_RETRIES above.
        "STRIPE_CONNECT_TIMEOUT": fraction("STRIPE_CONNECT_TIMEOUT", 2.0),
        "STRIPE_READ_TIMEOUT": fraction("STRIPE_READ_TIMEOUT", 5.0),
        # Bulkhead: at most this many Stripe calls at once per process (0: WEB_THREADS - 1, so
        # one thread is always free for reads); a call that finds no free slot
        # waits its turn up to STRIPE_CALL_QUEUE_WAIT seconds (about one normal Stripe call),
        # then, or at once when every slot is stuck longer than that, is answered 503.
        "STRIPE_MAX_CONCURRENT_CALLS": whole("STRIPE_MAX_CONCURRENT_CALLS", 0),
        "STRIPE_CALL_QUEUE_WAIT": fraction("STRIPE_CALL_QUEUE_WAIT", 1.0),
        # Circuit breaker: after this many calls in a row fail to reach Stripe, answer 503 at
        # once for STRIPE_BREAKER_COOLDOWN seconds (0 turns it off).
        "STRIPE_BREAKER_FAILURES": whole("STRIPE_BREAKER_FAILURES", 3),
        "STRIPE_BREAKER_COOLDOWN": fraction("STRIPE_BREAKER_COOLDOWN", 5.0),
        # The database: connect timeout (s), statement and lock timeouts (ms, PostgreSQL),
        # the pool (one connection per server thread) and how long to wait for one (s).
        "WEB_THREADS": whole("WEB_THREADS", 8),  # gunicorn.conf.py's default too
        "DB_CONNECT_TIMEOUT": whole("DB_CONNECT_TIMEOUT", 5),
        "DB_STATEMENT_TIMEOUT_MS": whole("DB_STATEMENT_TIMEOUT_MS", 15000),
        "DB_LOCK_TIMEOUT_MS": whole("DB_LOCK_TIMEOUT_MS", 5000),
        # PostgreSQL, client side (app/db_watchdog.py): a call waiting this long makes the app
        # ping the server; no answer within 0.5 s: the call is abandoned (503) and the database
        # marked frozen until it answers again. A slow statement on a live server runs on.
        "DB_STALL_SECONDS": fraction("DB_STALL_SECONDS", 0.5),
        # ... and no call waits longer than this at all (0: the statement timeout + 1 s).
        "DB_CLIENT_DEADLINE_SECONDS": fraction("DB_CLIENT_DEADLINE_SECONDS", 0.0),
        "DB_POOL_SIZE": whole("DB_POOL_SIZE", 0),  # 0: WEB_THREADS
        "DB_POOL_TIMEOUT": fraction("DB_POOL_TIMEOUT", 5.0),
        # /readyz answers within this many seconds whatever the database does (its own
        # connection, connect and statement timeout), so a load balancer can act on it.
        "READYZ_TIMEOUT_SECONDS": fraction("READYZ_TIMEOUT_SECONDS", 1.5),
        # A user with two live subscriptions: "flag" (log, report in `billing check`) or
        # "cancel_newer" (`billing check` also cancels the newer one now and refunds it).
        "DUPLICATE_SUBSCRIPTION_POLICY": os.environ.get("DUPLICATE_SUBSCRIPTION_POLICY", "flag"),
        # `billing sync`: a difference whose Stripe object changed less than this many seconds
        # ago is reported as "pending" (its webhook is probably on its way), not as drift.
        "SYNC_PENDING_SECONDS": whole("SYNC_PENDING_SECONDS", 300),
        # Webhooks (docs/webhooks.md): deliveries recorded per commit at most; where the applier
        # runs: one process per host started by gunicorn's master ("process", production's
        # default), a thread in each web process ("thread", the default elsewhere) or only
        # `flask billing apply` ("off"); the applier process's niceness and its threads (each
        # claims batches of its own: a first event is round trips, not CPU); events per
        # transaction; how often it polls (0: 0.5 s for a thread, which the inbox wakes, 0.05 s
        # for a process, which nothing wakes); retries with doubling back-off, then parking.
        "WEBHOOK_INGEST_MAX_BATCH": whole("WEBHOOK_INGEST_MAX_BATCH", 200),
        "WEBHOOK_APPLIER": os.environ.get("WEBHOOK_APPLIER", "").strip(),
        "WEBHOOK_APPLIER_NICE": whole("WEBHOOK_APPLIER_NICE", 19),
        "WEBHOOK_APPLY_THREADS": whole("WEBHOOK_APPLY_THREADS", 4),
        "WEBHOOK_APPLY_BATCH": whole("WEBHOOK_APPLY_BATCH", 200),
        "WEBHOOK_APPLY_POLL_SECONDS": fraction("WEBHOOK_APPLY_POLL_SECONDS", 0.0),
        "WEBHOOK_APPLY_MAX_ATTEMPTS": whole("WEBHOOK_APPLY_MAX_ATTEMPTS", 25),
        "WEBHOOK_APPLY_BACKOFF_SECONDS": fraction("WEBHOOK_APPLY_BACKOFF_SECONDS", 1.0),
        "WEBHOOK_APPLY_MAX_BACKOFF_SECONDS": fraction("WEBHOOK_APPLY_MAX_BACKOFF_SECONDS", 600.0),
    }
