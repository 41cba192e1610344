"""Flask extensions, created unbound so any module can import them without a cycle."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


# Rows stay readable after commit: we commit before every Stripe call and keep using them.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()

BreachHook = Callable[[str, str], None]


class RateLimits:
    """Flask-Limiter, one `Limiter` per app (its storage lives on the instance, and tests and
    workers run several apps in one process). Storage: Redis when `REDIS_URL` is set, so every
    worker and host shares the counters; memory otherwise. The limits themselves are in the
    configuration and checked by `app.ratelimit`."""

    def init_app(self, app: Flask) -> None:
        storage = app.config["REDIS_URL"] or "memory://"
        limiter = Limiter(
            key_func=lambda: "",  # keys are passed explicitly by app.ratelimit
            storage_uri=storage,
            strategy="fixed-window",
            enabled=bool(app.config["RATE_LIMIT_ENABLED"]),
        )
        limiter.init_app(app)
        app.extensions["rate_limits"] = self
        app.extensions["rate_limiter"] = limiter
        # Called as hook(scope, key_kind) on every 429, e.g. to count breaches in metrics.
        app.extensions.setdefault("rate_limit_breach_hooks", [])

    @staticmethod
    def limiter() -> Limiter:
        limiter: Limiter = current_app.extensions["rate_limiter"]
        return limiter

    @staticmethod
    def on_breach(app: Flask, hook: BreachHook) -> None:
        """Register `hook(scope, key_kind)`, called whenever a request is refused with 429."""
        app.extensions.setdefault("rate_limit_breach_hooks", []).append(hook)


rate_limits = RateLimits()
