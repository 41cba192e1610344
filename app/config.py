"""Configuration read from the environment (and `.env` through python-dotenv).

Every setting has one name, the same in the environment, in `.env.example` and in
`app.config`; tests pass overrides as a mapping to `create_app`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULT_API_VERSION = "2026-10-28.endive"
# Public on purpose, for development only: production refuses it (KNOWN_DEV_SECRETS).
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"  # nosec B105
APP_ENVS = ("development", "testing", "production")
DEV_DATABASE_URL = "sqlite:///billing-dev.db"
MIN_JWT_SECRET_BYTES = 32
# Secrets that are printed in this repository (source, .env.example, tests): never in production.
KNOWN_DEV_SECRETS = frozenset(
    {
        DEV_JWT_SECRET,
        "test-jwt-secret-0123456789-abcdefghijklmnop",
        "change-me",
        "changeme",
        "secret",
    }
)


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
    problem (`_PROBLEMS`) so start-up reports it with all the others."""
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
        # The embedded sandbox (used when no STRIPE_SECRET_KEY is set outside production)
        "SANDBOX_PORT": number("SANDBOX_PORT", 12111),
        "SANDBOX_STATE_FILE": os.environ.get("SANDBOX_STATE_FILE", ""),
        # Identity
        "AUTH_JWT_SECRET": os.environ.get("AUTH_JWT_SECRET", ""),
        "AUTH_JWKS_URL": os.environ.get("AUTH_JWKS_URL", ""),
        "AUTH_ISSUER": os.environ.get("AUTH_ISSUER", ""),
        "AUTH_AUDIENCE": os.environ.get("AUTH_AUDIENCE", ""),
        "AUTH_LEEWAY_SECONDS": number("AUTH_LEEWAY_SECONDS", 30),
        "AUTH_MAX_TOKEN_LIFETIME_SECONDS": number("AUTH_MAX_TOKEN_LIFETIME_SECONDS", 86400),
        # Entitlements
        "PLANS_FILE": os.environ.get("PLANS_FILE", ""),
        # GET /api/plans re-reads Stripe's prices at most this often (and after price webhooks)
        "PLANS_CACHE_SECONDS": number("PLANS_CACHE_SECONDS", 300),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        **reliability_from_env(problems),
        **security_from_env(problems),
        "FLASK_DEBUG": flag("FLASK_DEBUG", False),
        **operations_from_env(),
    }
    config[_PROBLEMS] = problems
    return config


_PROBLEMS = "_CONFIG_PROBLEMS"


def operations_from_env() -> dict[str, Any]:
    """Logs, metrics, error tracking, prices by lookup key, the dev sandbox's info file
    (README "Observability" and "Stripe setup")."""
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
        # Written by the dev server that runs the embedded sandbox; read by the CLI in development
        "SANDBOX_INFO_FILE": os.environ.get("SANDBOX_INFO_FILE", ""),
    }


def security_from_env(problems: list[str]) -> dict[str, Any]:
    """Body caps, abuse limits, client IPs and CORS (README "Security")."""
    whole = _collected(_env_int, problems)
    switch = _collected(_env_bool, problems)
    return {
        # Request bodies: the API's JSON, and Stripe's events (checked before reading).
        "MAX_CONTENT_LENGTH": whole("MAX_CONTENT_LENGTH", 64 * 1024),
        "WEBHOOK_MAX_BYTES": whole("WEBHOOK_MAX_BYTES", 512 * 1024),
        # Abuse limits ("N/minute;M/hour", per user unless named _IP); storage in Redis when set.
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        "RATE_LIMIT_ENABLED": switch("RATE_LIMIT_ENABLED", True),
        "RATE_LIMIT_KEY_PREFIX": os.environ.get("RATE_LIMIT_KEY_PREFIX", "billing"),
        "RATE_LIMIT_CHECKOUT": os.environ.get("RATE_LIMIT_CHECKOUT", "10/minute;50/hour"),
        "RATE_LIMIT_PORTAL": os.environ.get("RATE_LIMIT_PORTAL", "10/minute;60/hour"),
        "RATE_LIMIT_CHANGE": os.environ.get("RATE_LIMIT_CHANGE", "10/minute;60/hour"),
        "RATE_LIMIT_REFRESH": os.environ.get("RATE_LIMIT_REFRESH", "6/minute;60/hour"),
        "RATE_LIMIT_USAGE": os.environ.get("RATE_LIMIT_USAGE", "120/minute"),
        "RATE_LIMIT_IP": os.environ.get("RATE_LIMIT_IP", "300/minute"),
        "RATE_LIMIT_FAILED_AUTH": os.environ.get("RATE_LIMIT_FAILED_AUTH", "30/minute"),
        # Client IPs: how many reverse proxies in front of us set X-Forwarded-For (0 = none).
        "TRUSTED_PROXY_COUNT": whole("TRUSTED_PROXY_COUNT", 0),
        # CORS: bearer tokens need no credentials mode; set true only for cookie sessions.
        "CORS_ALLOW_CREDENTIALS": switch("CORS_ALLOW_CREDENTIALS", False),
        "CORS_MAX_AGE": whole("CORS_MAX_AGE", 600),
    }


# -- Reliability: bounded waits and the one-live-subscription rule (README "Reliability") ------

DUPLICATE_POLICIES = ("flag", "cancel_newer")


def reliability_from_env(problems: list[str]) -> dict[str, Any]:
    whole = _collected(_env_int, problems)
    fraction = _collected(_env_float, problems)
    return {
        # Every Stripe call: connect and read timeouts (s); STRIPE_MAX_NETWORK_RETRIES above.
        "STRIPE_CONNECT_TIMEOUT": fraction("STRIPE_CONNECT_TIMEOUT", 2.0),
        "STRIPE_READ_TIMEOUT": fraction("STRIPE_READ_TIMEOUT", 5.0),
        # Bulkhead: at most this many Stripe calls at once per process; a request that can't
        # get a slot within STRIPE_CALL_QUEUE_WAIT seconds is answered 503 at once.
        "STRIPE_MAX_CONCURRENT_CALLS": whole("STRIPE_MAX_CONCURRENT_CALLS", 4),
        "STRIPE_CALL_QUEUE_WAIT": fraction("STRIPE_CALL_QUEUE_WAIT", 0.1),
        # Circuit breaker: after this many calls in a row fail to reach Stripe, answer 503 at
        # once for STRIPE_BREAKER_COOLDOWN seconds (0 turns it off).
        "STRIPE_BREAKER_FAILURES": whole("STRIPE_BREAKER_FAILURES", 3),
        "STRIPE_BREAKER_COOLDOWN": fraction("STRIPE_BREAKER_COOLDOWN", 5.0),
        # The database: connect timeout (s), statement and lock timeouts (ms, PostgreSQL),
        # the pool (one connection per server thread) and how long to wait for one (s).
        "WEB_THREADS": whole("WEB_THREADS", 8),
        "DB_CONNECT_TIMEOUT": whole("DB_CONNECT_TIMEOUT", 5),
        "DB_STATEMENT_TIMEOUT_MS": whole("DB_STATEMENT_TIMEOUT_MS", 15000),
        "DB_LOCK_TIMEOUT_MS": whole("DB_LOCK_TIMEOUT_MS", 5000),
        "DB_POOL_SIZE": whole("DB_POOL_SIZE", 0),  # 0: WEB_THREADS
        "DB_POOL_TIMEOUT": fraction("DB_POOL_TIMEOUT", 5.0),
        # A user with two live subscriptions: "flag" (log, report in `billing check`) or
        # "cancel_newer" (`billing check` also cancels the newer one now and refunds it).
        "DUPLICATE_SUBSCRIPTION_POLICY": os.environ.get("DUPLICATE_SUBSCRIPTION_POLICY", "flag"),
        # `billing sync`: a difference whose Stripe object changed less than this many seconds
        # ago is reported as "pending" (its webhook is probably on its way), not as drift.
        "SYNC_PENDING_SECONDS": whole("SYNC_PENDING_SECONDS", 300),
        # Webhooks (docs/webhooks.md): deliveries recorded per commit at most; the applier runs
        # as a thread in each web process ("thread") or only as `flask billing apply` ("off"),
        # takes this many events per transaction, polls this often for other processes'
        # events, and retries a failing event with doubling back-off before parking it.
        "WEBHOOK_INGEST_MAX_BATCH": whole("WEBHOOK_INGEST_MAX_BATCH", 200),
        "WEBHOOK_APPLIER": os.environ.get("WEBHOOK_APPLIER", "thread"),
        "WEBHOOK_APPLY_BATCH": whole("WEBHOOK_APPLY_BATCH", 200),
        "WEBHOOK_APPLY_POLL_SECONDS": fraction("WEBHOOK_APPLY_POLL_SECONDS", 0.5),
        "WEBHOOK_APPLY_MAX_ATTEMPTS": whole("WEBHOOK_APPLY_MAX_ATTEMPTS", 25),
        "WEBHOOK_APPLY_BACKOFF_SECONDS": fraction("WEBHOOK_APPLY_BACKOFF_SECONDS", 1.0),
        "WEBHOOK_APPLY_MAX_BACKOFF_SECONDS": fraction("WEBHOOK_APPLY_MAX_BACKOFF_SECONDS", 600.0),
    }


def database_engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Bounded waits on the database: connecting, waiting for a pooled connection, and on
    PostgreSQL each statement and each lock wait; the pool holds one connection per thread."""
    # No pool_pre_ping: it costs a SELECT 1 round trip on every checkout. Connections are
    # recycled before servers and proxies typically drop idle ones, and a connection found
    # dead anyway is replaced where work starts (app/db.py `retry_on_disconnect`).
    options: dict[str, Any] = {"pool_recycle": 1800}
    url = config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("postgresql"):
        options.update(
            # One connection per request thread, and one for the webhook applier's thread.
            pool_size=config["DB_POOL_SIZE"] or config["WEB_THREADS"] + 1,
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
    """Settings are missing, malformed or unsafe; start-up stops with this message.

    `problems` lists every one of them, so a deploy is fixed in one pass."""

    def __init__(self, problems: list[str] | str) -> None:
        problems = [problems] if isinstance(problems, str) else problems
        self.problems = problems
        super().__init__(
            "refusing to start, fix the configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def finalize_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill derived values; refuse (listing every problem) anything unsafe."""
    problems: list[str] = list(config.pop(_PROBLEMS, []))
    app_env = config.get("APP_ENV")
    if app_env is None:
        app_env = config["APP_ENV"] = "development"
    if app_env not in APP_ENVS:
        # `Production`, `prod`, `production ` or "" must not quietly mean development.
        problems.append(f"APP_ENV must be one of {', '.join(APP_ENVS)} (or unset), not {app_env!r}")
    problems.extend(rate_limit_problems(config))
    if config.get("DUPLICATE_SUBSCRIPTION_POLICY") not in DUPLICATE_POLICIES:
        allowed = ", ".join(DUPLICATE_POLICIES)
        problems.append(f"DUPLICATE_SUBSCRIPTION_POLICY must be one of: {allowed}")
    if config.get("WEBHOOK_APPLIER") not in ("thread", "off"):
        problems.append("WEBHOOK_APPLIER must be thread or off")
    is_production = app_env == "production"
    if is_production:
        problems.extend(production_problems(config))
    if problems:
        raise ConfigError(problems)
    if not config["AUTH_JWT_SECRET"] and not config["AUTH_JWKS_URL"]:
        config["AUTH_JWT_SECRET"] = DEV_JWT_SECRET
    if app_env == "development":
        # The demo page is served by the app itself: its origin may receive redirects.
        own_origin = config["PUBLIC_URL"].rstrip("/")
        if own_origin not in config["FRONTEND_URLS"]:
            config["FRONTEND_URLS"] = [*config["FRONTEND_URLS"], own_origin]
    config["DATABASE_URL"] = config["DATABASE_URL"] or DEV_DATABASE_URL
    config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(config["DATABASE_URL"])
    config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", database_engine_options(config))
    return config


RATE_LIMIT_SETTINGS = (
    "RATE_LIMIT_CHECKOUT",
    "RATE_LIMIT_PORTAL",
    "RATE_LIMIT_CHANGE",
    "RATE_LIMIT_REFRESH",
    "RATE_LIMIT_USAGE",
    "RATE_LIMIT_IP",
    "RATE_LIMIT_FAILED_AUTH",
)


def rate_limit_problems(config: Mapping[str, Any]) -> list[str]:
    """Limits are parsed at start-up, so a typo stops the deploy instead of failing requests."""
    from limits import parse_many

    problems = []
    for name in RATE_LIMIT_SETTINGS:
        value = str(config.get(name) or "")
        try:
            if value.strip():
                parse_many(value)
        except ValueError:
            problems.append(f"{name} must look like '10/minute;50/hour', not {value!r}")
    return problems


def production_problems(config: Mapping[str, Any]) -> list[str]:
    """What production must have: every secret explicit, nothing from development."""
    problems = []
    url = config.get("DATABASE_URL") or ""
    if not url:
        problems.append("DATABASE_URL must be set (postgresql://...)")
    elif not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        problems.append("DATABASE_URL must be a PostgreSQL URL in production")
    secret = config.get("AUTH_JWT_SECRET") or ""
    if config.get("AUTH_JWKS_URL"):
        if not str(config["AUTH_JWKS_URL"]).startswith("https://"):
            problems.append("AUTH_JWKS_URL must be an https:// URL")
    elif not secret:
        problems.append("AUTH_JWT_SECRET or AUTH_JWKS_URL must be set (a secret of 32+ bytes)")
    elif secret in KNOWN_DEV_SECRETS:
        problems.append("AUTH_JWT_SECRET is a published development value; generate a new one")
    elif len(secret.encode()) < MIN_JWT_SECRET_BYTES:
        problems.append(f"AUTH_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes")
    key = config.get("STRIPE_SECRET_KEY") or ""
    if not key:
        problems.append("STRIPE_SECRET_KEY must be set (the sandbox never runs in production)")
    elif not key.startswith(("sk_live_", "sk_test_", "rk_live_", "rk_test_")):
        problems.append("STRIPE_SECRET_KEY must be a Stripe secret key (sk_... or rk_...)")
    if not config.get("STRIPE_WEBHOOK_SECRET"):
        problems.append("STRIPE_WEBHOOK_SECRET must be set (whsec_...)")
    if not (
        config.get("STRIPE_PRICE_ID_MONTHLY")
        or config.get("STRIPE_PRICE_LOOKUP_KEY_MONTHLY")
        or config.get("STRIPE_PRICE_IDS")
    ):
        problems.append(
            "STRIPE_PRICE_ID_MONTHLY (or STRIPE_PRICE_LOOKUP_KEY_MONTHLY or STRIPE_PRICE_IDS)"
            " must be set"
        )
    if config.get("DEBUG") or config.get("FLASK_DEBUG"):
        problems.append("debug mode must be off (FLASK_DEBUG)")
    return problems


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
