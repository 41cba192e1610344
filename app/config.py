"""Configuration read from the environment (and `.env` through python-dotenv).

Every setting has one name, the same in the environment, in `.env.example` and in
`app.config`; tests pass overrides as a mapping to `create_app`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULT_API_VERSION = "2026-10-28.endive"
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _env_csv(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


def config_from_env() -> dict[str, Any]:
    port = _env_int("PORT", 3001)
    return {
        "APP_ENV": os.environ.get("APP_ENV", "development"),
        "PORT": port,
        "PUBLIC_URL": os.environ.get("PUBLIC_URL", f"http://127.0.0.1:{port}"),
        "DATABASE_URL": os.environ.get("DATABASE_URL", "sqlite:///billing-dev.db"),
        "FRONTEND_URLS": _env_csv("FRONTEND_URL", "http://localhost:5173"),
        # Stripe
        "STRIPE_SECRET_KEY": os.environ.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET", ""),
        "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE", ""),
        "STRIPE_API_VERSION": os.environ.get("STRIPE_API_VERSION", DEFAULT_API_VERSION),
        "STRIPE_MAX_NETWORK_RETRIES": _env_int("STRIPE_MAX_NETWORK_RETRIES", 1),
        "STRIPE_PRICE_ID_MONTHLY": os.environ.get("STRIPE_PRICE_ID_MONTHLY", ""),
        "STRIPE_PRICE_ID_YEARLY": os.environ.get("STRIPE_PRICE_ID_YEARLY", ""),
        "STRIPE_PRICE_IDS": _env_csv("STRIPE_PRICE_IDS"),
        "STRIPE_WEBHOOK_TOLERANCE": _env_int("STRIPE_WEBHOOK_TOLERANCE", 300),
        # The embedded sandbox (used when no STRIPE_SECRET_KEY is set outside production)
        "SANDBOX_PORT": _env_int("SANDBOX_PORT", 12111),
        "SANDBOX_STATE_FILE": os.environ.get("SANDBOX_STATE_FILE", ""),
        # Identity
        "AUTH_JWT_SECRET": os.environ.get("AUTH_JWT_SECRET", ""),
        "AUTH_JWKS_URL": os.environ.get("AUTH_JWKS_URL", ""),
        "AUTH_ISSUER": os.environ.get("AUTH_ISSUER", ""),
        "AUTH_AUDIENCE": os.environ.get("AUTH_AUDIENCE", ""),
        "AUTH_LEEWAY_SECONDS": _env_int("AUTH_LEEWAY_SECONDS", 30),
        # Entitlements
        "PLANS_FILE": os.environ.get("PLANS_FILE", ""),
        # GET /api/plans re-reads Stripe's prices at most this often (and after price webhooks)
        "PLANS_CACHE_SECONDS": _env_int("PLANS_CACHE_SECONDS", 300),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        **reliability_from_env(),
        # Operations (issue 10): logs, metrics, error tracking, price lookup keys
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", ""),  # json | text; empty: json in production
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN", ""),  # bearer token for /metrics
        "SENTRY_DSN": os.environ.get("SENTRY_DSN", ""),
        "SENTRY_ENVIRONMENT": os.environ.get("SENTRY_ENVIRONMENT", ""),
        "SENTRY_RELEASE": os.environ.get("SENTRY_RELEASE", ""),
        "SENTRY_TRACES_SAMPLE_RATE": os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0"),
        # Prices by lookup key instead of id (resolved at start-up when the id is empty)
        "STRIPE_PRICE_LOOKUP_KEY_MONTHLY": os.environ.get("STRIPE_PRICE_LOOKUP_KEY_MONTHLY", ""),
        "STRIPE_PRICE_LOOKUP_KEY_YEARLY": os.environ.get("STRIPE_PRICE_LOOKUP_KEY_YEARLY", ""),
        # Written by the dev server that runs the embedded sandbox; read by the CLI in development
        "SANDBOX_INFO_FILE": os.environ.get("SANDBOX_INFO_FILE", ""),
    }


# -- Reliability: bounded waits and the one-live-subscription rule (README "Reliability") ------

DUPLICATE_POLICIES = ("flag", "cancel_newer")


def reliability_from_env() -> dict[str, Any]:
    return {
        # Every Stripe call: connect and read timeouts (s); STRIPE_MAX_NETWORK_RETRIES above.
        "STRIPE_CONNECT_TIMEOUT": _env_float("STRIPE_CONNECT_TIMEOUT", 2.0),
        "STRIPE_READ_TIMEOUT": _env_float("STRIPE_READ_TIMEOUT", 5.0),
        # Bulkhead: at most this many Stripe calls at once per process; a request that can't
        # get a slot within STRIPE_CALL_QUEUE_WAIT seconds is answered 503 at once.
        "STRIPE_MAX_CONCURRENT_CALLS": _env_int("STRIPE_MAX_CONCURRENT_CALLS", 4),
        "STRIPE_CALL_QUEUE_WAIT": _env_float("STRIPE_CALL_QUEUE_WAIT", 0.1),
        # Circuit breaker: after this many calls in a row fail to reach Stripe, answer 503 at
        # once for STRIPE_BREAKER_COOLDOWN seconds (0 turns it off).
        "STRIPE_BREAKER_FAILURES": _env_int("STRIPE_BREAKER_FAILURES", 3),
        "STRIPE_BREAKER_COOLDOWN": _env_float("STRIPE_BREAKER_COOLDOWN", 5.0),
        # The database: connect timeout (s), statement and lock timeouts (ms, PostgreSQL),
        # the pool (one connection per server thread) and how long to wait for one (s).
        "WEB_THREADS": _env_int("WEB_THREADS", 8),
        "DB_CONNECT_TIMEOUT": _env_int("DB_CONNECT_TIMEOUT", 5),
        "DB_STATEMENT_TIMEOUT_MS": _env_int("DB_STATEMENT_TIMEOUT_MS", 15000),
        "DB_LOCK_TIMEOUT_MS": _env_int("DB_LOCK_TIMEOUT_MS", 5000),
        "DB_POOL_SIZE": _env_int("DB_POOL_SIZE", 0),  # 0: WEB_THREADS
        "DB_POOL_TIMEOUT": _env_float("DB_POOL_TIMEOUT", 5.0),
        # A user with two live subscriptions: "flag" (log, report in `billing check`) or
        # "cancel_newer" (`billing check` also cancels the newer one now and refunds it).
        "DUPLICATE_SUBSCRIPTION_POLICY": os.environ.get("DUPLICATE_SUBSCRIPTION_POLICY", "flag"),
        # `billing sync`: a difference whose Stripe object changed less than this many seconds
        # ago is reported as "pending" (its webhook is probably on its way), not as drift.
        "SYNC_PENDING_SECONDS": _env_int("SYNC_PENDING_SECONDS", 300),
    }


def database_engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Bounded waits on the database: connecting, waiting for a pooled connection, and on
    PostgreSQL each statement and each lock wait; the pool holds one connection per thread."""
    # No pool_pre_ping: it costs a SELECT 1 round trip on every checkout. Connections are
    # recycled before servers and proxies typically drop idle ones, and a connection found
    # dead anyway is replaced where work starts (app/database.py `retry_on_disconnect`).
    options: dict[str, Any] = {"pool_recycle": 1800}
    url = config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("postgresql"):
        options.update(
            pool_size=config["DB_POOL_SIZE"] or config["WEB_THREADS"],
            max_overflow=2,
            pool_timeout=config["DB_POOL_TIMEOUT"],
            connect_args={
                "connect_timeout": config["DB_CONNECT_TIMEOUT"],
                "options": f"-c statement_timeout={config['DB_STATEMENT_TIMEOUT_MS']}"
                f" -c lock_timeout={config['DB_LOCK_TIMEOUT_MS']}",
                # A network that drops packets: give up on unacknowledged data, probe idle links.
                "tcp_user_timeout": config["DB_CONNECT_TIMEOUT"] * 1000 * 2,
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            },
        )
    return options


class ConfigError(RuntimeError):
    """A setting is missing or contradictory; start-up stops with this message."""


def finalize_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill derived values and refuse to start production with missing secrets."""
    is_production = config["APP_ENV"] == "production"
    if not config["AUTH_JWT_SECRET"] and not config["AUTH_JWKS_URL"]:
        if is_production:
            raise ConfigError("AUTH_JWT_SECRET or AUTH_JWKS_URL must be set in production")
        config["AUTH_JWT_SECRET"] = DEV_JWT_SECRET
    if is_production:
        missing = [
            name
            for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "DATABASE_URL")
            if not config.get(name)
        ]
        if not (
            config["STRIPE_PRICE_ID_MONTHLY"]
            or config.get("STRIPE_PRICE_LOOKUP_KEY_MONTHLY")
            or config["STRIPE_PRICE_IDS"]
        ):
            missing.append(
                "STRIPE_PRICE_ID_MONTHLY (or STRIPE_PRICE_LOOKUP_KEY_MONTHLY or STRIPE_PRICE_IDS)"
            )
        if missing:
            raise ConfigError("missing required settings for production: " + ", ".join(missing))
    if config["APP_ENV"] == "development":
        # The demo page is served by the app itself: its origin may receive redirects.
        own_origin = config["PUBLIC_URL"].rstrip("/")
        if own_origin not in config["FRONTEND_URLS"]:
            config["FRONTEND_URLS"] = [*config["FRONTEND_URLS"], own_origin]
    config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(config["DATABASE_URL"])
    if config["DUPLICATE_SUBSCRIPTION_POLICY"] not in DUPLICATE_POLICIES:
        allowed = ", ".join(DUPLICATE_POLICIES)
        raise ConfigError(f"DUPLICATE_SUBSCRIPTION_POLICY must be one of: {allowed}")
    config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", database_engine_options(config))
    return config


def normalize_database_url(url: str) -> str:
    """Accept Heroku/Render style `postgres://` URLs and select the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    config = config_from_env()
    config.update(overrides or {})
    return finalize_config(config)
