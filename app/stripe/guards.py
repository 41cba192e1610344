"""Guards around outbound Stripe calls: a bulkhead bounds how many run at once in this process
and a circuit breaker fails fast after repeated failures to reach Stripe, so an outage holds a
few threads instead of every worker (docs/reliability.md). They make no call themselves; the
gateway (app/stripe/gateway.py) runs every call through them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from app.billing.errors import ProviderUnavailable

log = logging.getLogger("app.stripe.gateway")  # the operators' existing log name for these lines

T = TypeVar("T")


class Bulkhead:
    """At most `size` Stripe calls at once; waiting longer than `wait` seconds for a slot fails
    fast with 503 instead of queueing behind calls that hang."""

    def __init__(self, size: int, wait: float) -> None:
        self._slots = threading.BoundedSemaphore(max(1, size))
        self._wait = max(0.0, wait)

    def run(self, request: Callable[[], T]) -> T:
        if not self._slots.acquire(timeout=self._wait):
            log.warning("Stripe bulkhead full: answering 503 without calling Stripe")
            raise ProviderUnavailable(
                "The payment provider is slow to answer right now. Try again in a minute.",
                code="payment_provider_busy",
            )
        try:
            return request()
        finally:
            self._slots.release()


class CircuitBreaker:
    """After `failures` Stripe calls in a row fail to get an answer (timeouts, refused
    connections, Stripe's 5xx), calls fail fast with 503 for `cooldown` seconds instead of each
    waiting out its timeout; then calls go through again, and one more failure reopens it."""

    def __init__(self, failures: int, cooldown: float) -> None:
        self._threshold = max(1, failures)
        self._cooldown = max(0.0, cooldown)
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0

    def check(self) -> None:
        if self._cooldown and time.monotonic() < self._open_until:
            raise ProviderUnavailable(
                "The payment provider is unreachable. Try again shortly.",
                code="payment_provider_unavailable",
            )

    def record(self, reached: bool) -> None:
        with self._lock:
            if reached:
                self._failures = 0
                return
            self._failures += 1
            if self._failures >= self._threshold:
                if time.monotonic() >= self._open_until:
                    log.error("Stripe unreachable %d times in a row: failing fast", self._failures)
                self._open_until = time.monotonic() + self._cooldown
                self._failures = self._threshold - 1  # the next failure reopens it
