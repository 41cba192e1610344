"""Logs, request ids, Prometheus metrics and Sentry: wired into the app by `init_observability`."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from app.observability import metrics
from app.observability.logging import configure_logging, log_event
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


def init_observability(app: Flask) -> None:
    init_sentry(app.config)

    @app.before_request
    def _start() -> None:
        g.request_started = time.perf_counter()
        g.request_id_token = bind_request_id(incoming_request_id(request.headers))

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = current_request_id() or ""
        started = g.pop("request_started", None)
        if started is None:
            return response
        duration = time.perf_counter() - started
        route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        metrics.observe_request(request.method, route, response.status_code, duration)
        user = g.get("user")
        if route not in QUIET_ROUTES:
            log_event(
                "app.request",
                "request",
                method=request.method,
                route=route,
                path=request.path,
                status=response.status_code,
                duration_ms=round(duration * 1000, 2),
                user_id=getattr(user, "id", None),
                **g.get("log_fields", {}),
            )
        return response

    @app.teardown_request
    def _unbind(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            unbind_request_id(token)
