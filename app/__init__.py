"""The billing API's application factory."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, cast
from urllib.parse import unquote

from dotenv import load_dotenv
from flask import Flask, Response, request
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
            API_CORS: {"origins": frontends},
            REFRESH_CORS: {"origins": frontends, "supports_credentials": True},
        },
        # The browser may read these: the TypeScript client's `retryAfter` (429, 503) and a
        # replayed usage call's marker.
        expose_headers=["X-Request-ID", "Retry-After", "Idempotent-Replayed"],
        # Bearer tokens need no credentials mode; only a cookie-based front end does.
        supports_credentials=bool(app.config["CORS_ALLOW_CREDENTIALS"]),
        max_age=app.config["CORS_MAX_AGE"],
    )
    _reuse_cors_headers_without_origin(app)


# The CORS resources (regular expressions on the path, matched from its start, as flask-cors
# does); they never both match a path.
API_CORS = r"/api/(?!webhooks/)"
REFRESH_CORS = r"/auth/(refresh|logout)$"


def _reuse_cors_headers_without_origin(app: Flask) -> None:
    """flask-cors answers a request without an `Origin` header (server to server, curl, a
    load test; not a browser's cross-origin call) with the same headers every time for a
    resource (it always sends the configured origins), yet recomputes them on every request.
    Here they are computed by flask-cors once per resource and then reused; a request with an
    `Origin`, a preflight (OPTIONS) or a private-network request goes to flask-cors as before."""
    hooks = app.after_request_funcs.setdefault(None, [])
    index = next(i for i, hook in enumerate(hooks) if hook.__name__ == "cors_after_request")
    compute = cast(Callable[[Response], Response], hooks[index])
    resources = [re.compile(API_CORS), re.compile(REFRESH_CORS)]
    added: dict[int, list[tuple[str, str]]] = {}

    def cors_after_request(response: Response) -> Response:
        environ = request.environ
        if (
            "HTTP_ORIGIN" in environ
            or "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK" in environ
            or request.method == "OPTIONS"
            or "Access-Control-Allow-Origin" in response.headers
        ):
            return compute(response)
        path = unquote(request.path)
        resource = next((n for n, pattern in enumerate(resources) if pattern.match(path)), None)
        if resource is None:
            return response  # no CORS resource: flask-cors adds nothing either
        headers = added.get(resource)
        if headers is None:
            count = len(response.headers)
            response = compute(response)
            added[resource] = list(response.headers)[count:]
            return response
        response.headers.extend(headers)
        return response

    hooks[index] = cors_after_request


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
