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
        "STRIPE_MAX_NETWORK_RETRIES": _env_int("STRIPE_MAX_NETWORK_RETRIES", 2),
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
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
    }


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
        if not (config["STRIPE_PRICE_ID_MONTHLY"] or config["STRIPE_PRICE_IDS"]):
            missing.append("STRIPE_PRICE_ID_MONTHLY (or STRIPE_PRICE_IDS)")
        if missing:
            raise ConfigError("missing required settings for production: " + ", ".join(missing))
    config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(config["DATABASE_URL"])
    config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
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
