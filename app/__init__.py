"""The billing API's application factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dotenv import load_dotenv
from flask import Flask
from flask_cors import CORS

from app.config import ConfigError, load_config
from app.extensions import migrate, rate_limits
from app.observability import init_observability, metrics
from app.observability.logging import configure_logging, log_format


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    load_dotenv()
    config = load_config(overrides)
    configure_logging(config["LOG_LEVEL"], log_format(config["APP_ENV"], config["LOG_FORMAT"]))

    app = Flask(__name__)
    app.config.from_mapping(config)
    if app.config["APP_ENV"] == "production" and app.debug:
        raise ConfigError(["debug mode must be off in production"])
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from app.billing.price_lookup import PriceLookup
    from app.dev_stack import configure_development_stripe
    from app.stripe.gateway import StripeGateway

    # The product never runs a Stripe stand-in: `make run` (bin/dev-stack) composes one.
    configure_development_stripe(app.config)
    gateway = StripeGateway.from_config(app.config)
    app.extensions["stripe_gateway"] = gateway
    # Prices by lookup key are read on first need (a checkout, the plans table), not here:
    # booting never waits on Stripe.
    app.extensions["price_lookup"] = PriceLookup.from_config(app.config)
    init_observability(app)

    _set_up_database(app)
    _set_up_cors(app)
    rate_limits.init_app(app)
    rate_limits.on_breach(app, lambda scope, _key_kind: metrics.count_rate_limited(scope))

    from app import audit, security
    from app.api import register_blueprints
    from app.cli import register_cli
    from app.errors import register_error_handlers

    register_blueprints(app)
    from app.demo import register_demo

    register_demo(app)
    register_error_handlers(app)
    security.install(app)
    audit.install(app)
    register_cli(app)
    return app


def _set_up_cors(app: Flask) -> None:
    frontends = app.config["FRONTEND_URLS"]
    CORS(
        app,
        # The front end's routes; not the webhook receiver (Stripe calls it server to server,
        # and it is the hottest route: no CORS work on it). The refresh cookie's routes are
        # called with credentials, from the front-end origins only.
        resources={
            r"/api/(?!webhooks/)": {"origins": frontends},
            r"/auth/(refresh|logout)$": {"origins": frontends, "supports_credentials": True},
        },
        # The browser may read these: the TypeScript client's `retryAfter` (429, 503) and a
        # replayed usage call's marker.
        expose_headers=["X-Request-ID", "Retry-After", "Idempotent-Replayed"],
        # Bearer tokens need no credentials mode; only a cookie-based front end does.
        supports_credentials=bool(app.config["CORS_ALLOW_CREDENTIALS"]),
        max_age=app.config["CORS_MAX_AGE"],
    )


def _set_up_database(app: Flask) -> None:
    from app.billing.webhooks.receive import install as install_webhooks
    from app.db import configure_engine
    from app.extensions import db as database  # `app.db` is the module that owns transactions

    database.init_app(app)
    migrate.init_app(app, database, directory=_migrations_directory())
    configure_engine(app)
    install_webhooks(app)


def _migrations_directory() -> str:
    import os

    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")
