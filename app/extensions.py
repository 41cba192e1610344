"""Flask extensions, created unbound so any module can import them without a cycle."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from limits.strategies import FixedWindowRateLimiter, RateLimiter
from sqlalchemy.orm import DeclarativeBase

from app.ratelimit_storage import StorageGuard, counter_storage, probe

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


# Rows stay readable after commit: we commit before every Stripe call and keep using them.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()

BreachHook = Callable[[str, str], None]


class RateLimits:
    """The counters behind the rate limits: the `limits` library (Flask-Limiter's engine),
    one fixed-window limiter per app (its storage lives on the instance, and tests and workers
    run several apps in one process). Storage: Redis when `REDIS_URL` is set, so every worker
    and host shares the counters; memory otherwise. The limits themselves are in the
    configuration and checked by `app.ratelimit`, only on the routes that have them: nothing
    runs before or after the other requests (Flask-Limiter's request hooks cost every request,
    the webhook included, about 5% of its CPU for limits it never had)."""

    def init_app(self, app: Flask) -> None:
        storage = counter_storage(app.config["REDIS_URL"], app.config["REDIS_TIMEOUT_MS"])
        app.extensions["rate_limits"] = self
        app.extensions["rate_limiter"] = FixedWindowRateLimiter(storage)
        # Every storage call goes through the guard (app/ratelimit_storage.py): a Redis that
        # refuses or hangs turns the limits off for a while, with one log line.
        app.extensions["rate_limit_guard"] = StorageGuard(app.config["REDIS_RETRY_SECONDS"])
        # Called as hook(scope, key_kind) on every 429, e.g. to count breaches in metrics.
        app.extensions.setdefault("rate_limit_breach_hooks", [])

    @staticmethod
    def limiter() -> RateLimiter:
        limiter: RateLimiter = current_app.extensions["rate_limiter"]
        return limiter

    @staticmethod
    def guard() -> StorageGuard:
        guard: StorageGuard = current_app.extensions["rate_limit_guard"]
        return guard

    @staticmethod
    def storage_state() -> str:
        """memory | ok | timeout | refused | error: what the counters' storage does now."""
        return probe(current_app.extensions["rate_limiter"].storage)

    @staticmethod
    def on_breach(app: Flask, hook: BreachHook) -> None:
        """Register `hook(scope, key_kind)`, called whenever a request is refused with 429."""
        app.extensions.setdefault("rate_limit_breach_hooks", []).append(hook)


rate_limits = RateLimits()
