"""Prometheus metrics, correct under several gunicorn workers.

With `PROMETHEUS_MULTIPROC_DIR` set (bin/start and gunicorn.conf.py do it) prometheus-client
writes each worker's values to files there and `/metrics` adds them up; without it (tests,
`flask run`) the process's own registry is served. The counters are module-level, so any module
may import this one without a cycle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# A process started with the variable set (a CLI command beside the server) must not fail on
# a directory gunicorn has not made yet.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "billing_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "billing_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
WEBHOOK_EVENTS = Counter(
    "billing_webhook_events_total",
    "Stripe webhook events processed (applied, duplicate, ignored, failed)",
    ["type", "outcome"],
)
WEBHOOK_LATENCY = Histogram(
    "billing_webhook_event_duration_seconds",
    "Apply lag of one webhook event: received (recorded) -> applied",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
# Read by each running applier every few seconds; across processes the largest reading of
# the live ones counts (an applier that died leaves no stale value: mark_process_dead).
WEBHOOK_BACKLOG = Gauge(
    "billing_webhook_backlog_events",
    "Webhook events recorded and not yet applied (parked ones not counted)",
    multiprocess_mode="livemax",
)
WEBHOOK_OLDEST_PENDING = Gauge(
    "billing_webhook_oldest_pending_seconds",
    "How long the oldest webhook event not yet applied has waited since it was received",
    multiprocess_mode="livemax",
)
STRIPE_CALLS = Counter(
    "billing_stripe_calls_total", "Calls to Stripe's API", ["operation", "outcome"]
)
STRIPE_LATENCY = Histogram(
    "billing_stripe_call_duration_seconds",
    "Time of one Stripe API call (SDK retries included)",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
USAGE = Counter(
    "billing_usage_generations_total",
    "Generation requests decided (replays of an idempotency key not counted)",
    ["result"],
)
RATE_LIMITED = Counter("billing_rate_limited_total", "Requests refused by a rate limit", ["scope"])


# (method, route, status) -> its counter and histogram children. `labels()` validates and
# converts the values and takes the metric's lock on every call, the larger share of a
# request's metrics cost; the children are the same objects every time (prometheus-client
# keeps them too), so each request only looks them up here. Routes are the app's URL rules
# (and "<unmatched>"), so the keys are few. A child made before a fork follows the new
# process's pid (multiprocess mode checks it on every write).
_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    children = _REQUEST_CHILDREN.get((method, route, status))
    if children is None:
        children = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_LATENCY.labels(method, route),
        )
        _REQUEST_CHILDREN[(method, route, status)] = children
    children[0].inc()
    children[1].observe(seconds)


def observe_webhook(event_type: str, outcome: str, seconds: float) -> None:
    WEBHOOK_EVENTS.labels(event_type or "unknown", outcome).inc()
    WEBHOOK_LATENCY.labels(outcome).observe(seconds)


def observe_webhook_batch(
    counts: Mapping[tuple[str, str], int], lags: Mapping[str, Sequence[float]]
) -> None:
    """A batch of applied events at once (the applier): events per (type, outcome) counted
    once each, and each event's apply lag in its outcome's histogram."""
    for (event_type, outcome), count in counts.items():
        WEBHOOK_EVENTS.labels(event_type or "unknown", outcome).inc(count)
    for outcome, seconds in lags.items():
        histogram = WEBHOOK_LATENCY.labels(outcome)
        for value in seconds:
            histogram.observe(value)


def observe_backlog(pending: int, oldest_seconds: float) -> None:
    WEBHOOK_BACKLOG.set(pending)
    WEBHOOK_OLDEST_PENDING.set(oldest_seconds)


def observe_stripe_call(operation: str, outcome: str, seconds: float) -> None:
    STRIPE_CALLS.labels(operation, outcome).inc()
    STRIPE_LATENCY.labels(operation).observe(seconds)


def count_usage(result: str) -> None:
    """`granted` or `refused`."""
    USAGE.labels(result).inc()


def count_rate_limited(scope: str) -> None:
    """Call when a rate limit refuses a request; `scope` names the limit (e.g. `checkout`)."""
    RATE_LIMITED.labels(scope).inc()


def render() -> tuple[bytes, str]:
    """The exposition text of every worker (multiprocess) or of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
