"""The configuration: the settings (read by `app/environment.py` from the environment and
`.env`), overrides from tests, derived values, and the rules a deploy must meet (production
fails closed, listing every problem).

Every setting has one name, the same in the environment, in `.env.example` and in
`app.config`; tests pass overrides as a mapping to `create_app`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy.pool import NullPool

from app import json_text
from app.environment import DUPLICATE_POLICIES, PROBLEMS, config_from_env
from app.signin.settings import (
    DEV_SESSION_SECRET,
    finalize_signin,
    github_configured,
    signin_production_problems,
)

# Public on purpose, for development only: production refuses it (KNOWN_DEV_SECRETS).
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"  # nosec B105
APP_ENVS = ("development", "testing", "production")
DEV_DATABASE_URL = "sqlite:///billing-dev.db"
MIN_JWT_SECRET_BYTES = 32
MIN_METRICS_TOKEN_CHARS = 16
# Secrets that are printed in this repository (source, .env.example, tests): never in production.
KNOWN_DEV_SECRETS = frozenset(
    {
        DEV_JWT_SECRET,
        DEV_SESSION_SECRET,
        "test-jwt-secret-0123456789-abcdefghijklmnop",
        "change-me",
        "changeme",
        "secret",
    }
)


def database_engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Bounded waits on the database: connecting, waiting for a pooled connection, and on
    PostgreSQL each statement and each lock wait; the pool holds one connection per thread."""
    # No pool_pre_ping: it costs a SELECT 1 round trip on every checkout. Connections are
    # recycled before servers and proxies typically drop idle ones, and a connection found
    # dead anyway is replaced where work starts (app/db.py `retry_on_disconnect`).
    options: dict[str, Any] = {"pool_recycle": 1800, "json_deserializer": json_text.loads}
    url = config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("postgresql"):
        options.update(
            # One connection per request thread, one for the webhook applier's thread and one
            # the webhook inbox's writer keeps (app/db_writer.py StatementWriter).
            pool_size=config["DB_POOL_SIZE"] or config["WEB_THREADS"] + 2,
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


def probe_engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """A connection of its own per probe (NullPool: never one of the request pool's, which a
    frozen database may hold), with a short connect and statement timeout."""
    seconds = float(config["READYZ_TIMEOUT_SECONDS"])
    options: dict[str, Any] = {"poolclass": NullPool}
    if config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        options["connect_args"] = {
            # libpq counts whole seconds (and treats 1 as 2); the probe's deadline is the bound.
            "connect_timeout": max(1, math.ceil(seconds)),
            "options": f"-c statement_timeout={int(seconds * 1000)}",
            "tcp_user_timeout": int(seconds * 1000),
        }
    else:
        options["connect_args"] = {"timeout": seconds}  # SQLite's wait on a locked file
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
    problems: list[str] = list(config.pop(PROBLEMS, []))
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
    problems.extend(applier_problems(config, production=app_env == "production"))
    if (
        not isinstance(config.get("DB_STALL_SECONDS"), float | int)
        or config["DB_STALL_SECONDS"] <= 0
    ):
        # 0 would ping the server on every statement; a frozen database costs this + 0.5 s.
        problems.append("DB_STALL_SECONDS must be a positive number of seconds")
    is_production = app_env == "production"
    if is_production:
        problems.extend(production_problems(config))
    if app_env == "development":
        # The demo page is served by the app itself: its origin may receive redirects.
        own_origin = config["PUBLIC_URL"].rstrip("/")
        if own_origin not in config["FRONTEND_URLS"]:
            config["FRONTEND_URLS"] = [*config["FRONTEND_URLS"], own_origin]
    problems.extend(finalize_signin(config, production=is_production))
    if problems:
        raise ConfigError(problems)
    if not (config["AUTH_JWT_SECRET"] or config["AUTH_JWKS_URL"] or is_production):
        # Never in production: there an empty secret means "no HS256 tokens" (GitHub only).
        config["AUTH_JWT_SECRET"] = DEV_JWT_SECRET
    config["STRIPE_MAX_CONCURRENT_CALLS"] = stripe_call_slots(config)
    config["DATABASE_URL"] = config["DATABASE_URL"] or DEV_DATABASE_URL
    config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(config["DATABASE_URL"])
    config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", database_engine_options(config))
    return config


WEBHOOK_APPLIERS = ("process", "thread", "off")


def applier_problems(config: dict[str, Any], *, production: bool) -> list[str]:
    """Fill in where the webhook applier runs and how often it polls; what is wrong with them.
    Production defaults to one applier process per host (gunicorn.conf.py starts it): a thread
    in every worker takes the GIL from that worker's requests (docs/performance.md, issue 19).
    Elsewhere a thread, so `flask run` applies with no second process."""
    mode = config.get("WEBHOOK_APPLIER") or ("process" if production else "thread")
    config["WEBHOOK_APPLIER"] = mode
    if not config.get("WEBHOOK_APPLY_POLL_SECONDS"):
        # The inbox wakes a thread of its own process; a process on its own has only the poll.
        config["WEBHOOK_APPLY_POLL_SECONDS"] = 0.5 if mode == "thread" else 0.05
    problems = []
    if mode not in WEBHOOK_APPLIERS:
        problems.append(f"WEBHOOK_APPLIER must be one of: {', '.join(WEBHOOK_APPLIERS)}")
    if config["WEBHOOK_APPLY_POLL_SECONDS"] < 0:
        problems.append("WEBHOOK_APPLY_POLL_SECONDS must not be negative")
    if not -20 <= int(config.get("WEBHOOK_APPLIER_NICE") or 0) <= 19:
        problems.append("WEBHOOK_APPLIER_NICE must be between -20 and 19")
    if not 1 <= int(config.get("WEBHOOK_APPLY_THREADS", 1)) <= 16:
        problems.append("WEBHOOK_APPLY_THREADS must be between 1 and 16")
    return problems


def stripe_call_slots(config: Mapping[str, Any]) -> int:
    """The Stripe bulkhead's size (unless set): one slot fewer than the request threads, so
    however slow Stripe is, one thread per process is left for reads and health checks."""
    asked = int(config.get("STRIPE_MAX_CONCURRENT_CALLS") or 0)
    return asked if asked > 0 else max(1, int(config["WEB_THREADS"]) - 1)


RATE_LIMIT_SETTINGS = (
    "RATE_LIMIT_CHECKOUT",
    "RATE_LIMIT_PORTAL",
    "RATE_LIMIT_CHANGE",
    "RATE_LIMIT_REFRESH",
    "RATE_LIMIT_USAGE",
    "RATE_LIMIT_IP",
    "RATE_LIMIT_FAILED_AUTH",
    "RATE_LIMIT_SIGNIN",
    "RATE_LIMIT_SESSION",
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
        if not github_configured(config):
            problems.append(
                "a way to sign in must be set: GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (Sign in"
                " with GitHub), AUTH_JWKS_URL (your identity provider) or AUTH_JWT_SECRET (32+"
                " bytes your backend signs tokens with)"
            )
    elif secret in KNOWN_DEV_SECRETS:
        problems.append("AUTH_JWT_SECRET is a published development value; generate a new one")
    elif len(secret.encode()) < MIN_JWT_SECRET_BYTES:
        problems.append(f"AUTH_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes")
    problems.extend(signin_production_problems(config, KNOWN_DEV_SECRETS))
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
    problems.extend(metrics_token_problems(config))
    return problems


def metrics_token_problems(config: Mapping[str, Any]) -> list[str]:
    """/metrics names routes, error rates and Stripe outages: never open to the internet."""
    token = str(config.get("METRICS_TOKEN") or "")
    if not token:
        return ["METRICS_TOKEN must be set (the bearer token /metrics requires; 16+ characters)"]
    if len(token) < MIN_METRICS_TOKEN_CHARS or token in KNOWN_DEV_SECRETS:
        return [f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_CHARS} random characters"]
    return []


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
