"""One log line (operation, duration, Stripe's request id, outcome) and the metrics for each
Stripe call; the gateway wraps every SDK request in `observed_call`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import stripe

from app.observability import metrics

log = logging.getLogger("app.stripe.gateway")


def observed_call(request: Callable[[], Any], operation: str) -> Any:
    """Run one SDK request: time it, log it with Stripe's request id, count it."""
    started = time.perf_counter()
    outcome, stripe_request_id, error = "ok", None, None
    try:
        result = request()
        response = getattr(result, "last_response", None)
        stripe_request_id = getattr(response, "request_id", None)
        return result
    except stripe.StripeError as exc:
        outcome, stripe_request_id, error = "error", exc.request_id, type(exc).__name__
        raise
    except Exception as exc:
        outcome, error = "error", type(exc).__name__
        raise
    finally:
        seconds = time.perf_counter() - started
        metrics.observe_stripe_call(operation, outcome, seconds)
        log.info(
            "stripe call",
            extra={
                "operation": operation,
                "outcome": outcome,
                "duration_ms": round(seconds * 1000, 2),
                "stripe_request_id": stripe_request_id,
                "error": error,
            },
        )
