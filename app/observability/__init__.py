"""Logs, request ids, Prometheus metrics and Sentry: wired into the app by `init_observability`."""

from __future__ import annotations

import time
from logging import INFO, getLogger

from flask import Flask, Response, g, request

from app.observability import metrics
from app.observability.logging import configure_logging
from app.observability.request_id import (
    REQUEST_ID_HEADER,
    bind_request_id,
    current_request_id,
    incoming_request_id,
    unbind_request_id,
)
from app.observability.sentry import init_sentry

__all__ = ["configure_logging", "current_request_id", "init_observability", "metrics"]

# Probes and scrapes come every few seconds; a line each would drown the log.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
# The access line: `log_event("app.request", "request", ...)`'s logger, looked up once.
_ACCESS_LOG = getLogger("app.request")


def init_observability(app: Flask) -> None:
    init_sentry(app.config)

    # Every request runs these three (the webhook, the reads, the consume): each proxy access
    # (`request.x`, `g.x`) is a context-variable lookup, so each hook takes the objects once.
    @app.before_request
    def _start() -> None:
        state = g._get_current_object()
        state.request_started = time.perf_counter()
        state.request_id_token = bind_request_id(incoming_request_id(request.headers))

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = current_request_id() or ""
        state = g._get_current_object()
        started = state.__dict__.pop("request_started", None)
        if started is None:
            return response
        duration = time.perf_counter() - started
        served = request._get_current_object()  # type: ignore[attr-defined]
        rule = served.url_rule
        route = rule.rule if rule is not None else "<unmatched>"
        status = response.status_code
        metrics.observe_request(served.method, route, status, duration)
        # The line's fields are built only when it is written (LOG_LEVEL=WARNING drops it).
        if route not in QUIET_ROUTES and _ACCESS_LOG.isEnabledFor(INFO):
            user = state.__dict__.get("user")
            _ACCESS_LOG.info(
                "request",
                extra={
                    "method": served.method,
                    "route": route,
                    "path": served.path,
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                    "user_id": getattr(user, "id", None),
                    **state.__dict__.get("log_fields", {}),
                },
            )
        return response

    @app.teardown_request
    def _unbind(_exc: BaseException | None) -> None:
        token = g.__dict__.pop("request_id_token", None)
        if token is not None:
            unbind_request_id(token)
