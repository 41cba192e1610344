"""Guards around outbound Stripe calls: a bulkhead bounds how many run at once in this process
and a circuit breaker fails fast after repeated failures to reach Stripe, so an outage holds a
few threads instead of every worker (docs/reliability.md). They make no call themselves; the
gateway (app/stripe/gateway.py) runs every call through them."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from app.billing.errors import ProviderUnavailable
from app.outage_log import OutageLog

log = logging.getLogger("app.stripe.gateway")  # the operators' existing log name for these lines

T = TypeVar("T")


class Bulkhead:
    """At most `size` Stripe calls at once in this process (sized from the request threads so
    one thread never waits on Stripe, app/config.py), so a hung Stripe holds a few threads,
    not all of them. A call that finds every slot taken waits up to `wait` seconds, first come
    first served: about as long as a normal Stripe call takes, so a merely slow Stripe
    (0.2-1 s) queues briefly instead of being turned away. When every slot is held by a call
    older than `wait` (Stripe looks hung, not slow), a new call is refused with 503 at once
    instead of holding a thread that reads could use.

    A refusal is logged once per outage (the first; the rest at DEBUG), and the outage's end
    once: the first call that succeeds and leaves a slot free, a second after the last
    refusal (a hung Stripe's timed-out call frees a slot too, but does not succeed)."""

    def __init__(self, size: int, wait: float) -> None:
        self._size = max(1, size)
        self._wait = max(0.0, wait)
        self._lock = threading.Lock()
        self._running: dict[object, float] = {}  # ticket -> when its call took the slot
        self._waiters: deque[threading.Event] = deque()
        self._outage = OutageLog(
            log,
            "Stripe bulkhead full ({cause}): answering 503 payment_provider_busy without"
            " calling Stripe until a call gets through again (each refusal at DEBUG)",
            "Stripe bulkhead has room again after {lasted:.1f} s;"
            " {refused} call(s) refused meanwhile",
            level=logging.WARNING,
        )

    @property
    def size(self) -> int:
        return self._size

    def run(self, request: Callable[[], T]) -> T:
        ticket = object()
        if not self._acquire(ticket):
            self._outage.refused(f"{self._size} slot(s) busy past the {self._wait} s wait")
            raise ProviderUnavailable(
                "The payment provider is slow to answer right now. Try again in a minute.",
                code="payment_provider_busy",
            )
        succeeded = False
        try:
            result = request()
            succeeded = True
            return result
        finally:
            if self._release(ticket) and succeeded:
                self._outage.answered()

    def _acquire(self, ticket: object) -> bool:
        with self._lock:
            if len(self._running) < self._size and not self._waiters:
                self._running[ticket] = time.monotonic()
                return True
            if not self._wait or self._all_stuck():
                return False
            turn = threading.Event()
            self._waiters.append(turn)
        handed = turn.wait(self._wait)
        with self._lock:
            if handed or turn.is_set():  # a slot was handed over (maybe as the wait ended)
                del self._running[turn]
                self._running[ticket] = time.monotonic()
                return True
            self._waiters.remove(turn)
            return False

    def _release(self, ticket: object) -> bool:
        """Give the slot back; True when it is left free (no one was waiting for it)."""
        with self._lock:
            del self._running[ticket]
            if self._waiters:
                # The slot passes to the longest waiter, so a newcomer can't overtake it.
                self._running[self._waiters[0]] = 0.0  # reserved until the waiter claims it
                self._waiters.popleft().set()
                return False
            return True

    def _all_stuck(self) -> bool:
        """Every slot is held by a call running longer than a normal one: waiting is futile."""
        oldest_normal = time.monotonic() - self._wait
        return len(self._running) >= self._size and all(
            0.0 < started < oldest_normal for started in self._running.values()
        )


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
