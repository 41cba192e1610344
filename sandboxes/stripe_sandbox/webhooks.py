"""Webhook delivery: Stripe-compatible signing and a background dispatcher
with retries (Stripe's backoff, scaled by ``retry_time_scale``)."""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .context import Config

# Seconds to wait after the n-th failed attempt before the next one (~3 days in all).
RETRY_SCHEDULE: list[int] = [60, 300, 1800, 7200, 18000, 36000, 36000, 36000, 36000, 36000]
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
REQUEST_TIMEOUT = 10.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Stripe counts a 3xx answer as a failed delivery; do not follow it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# no proxies from the environment, no redirects
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def sign(payload: str, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for ``payload``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass(order=True)
class Job:
    due: float
    seq: int
    event_id: str = field(compare=False)
    event_type: str = field(compare=False)
    endpoint_id: str = field(compare=False)
    url: str = field(compare=False)
    secret: str = field(compare=False)
    payload: str = field(compare=False)
    attempt: int = field(compare=False, default=1)


class Dispatcher:
    """Delivers events on one daemon worker thread, never in the caller's thread."""

    def __init__(self, config: Config, on_success: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.on_success = on_success
        self.cond = threading.Condition()
        self.heap: list[Job] = []
        self.inflight = 0
        self.generation = 0
        self.log: list[dict[str, Any]] = []
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._run, name="stripe-sandbox-webhooks", daemon=True
        )
        self._thread.start()

    # ----------------------------------------------------------- public
    def enqueue(self, batch: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
        """Queue the events of one operation, each for its matching endpoints."""
        jobs: list[Job] = []
        copies = 2 if self.config.duplicate_deliveries else 1
        due = time.monotonic() + self.config.delivery_delay
        for event, endpoints in batch:
            payload = json.dumps(event, indent=2)
            for endpoint in endpoints:
                for _ in range(copies):
                    jobs.append(
                        Job(
                            due,
                            0,
                            event["id"],
                            event["type"],
                            endpoint["id"],
                            endpoint["url"],
                            endpoint["_secret"],
                            payload,
                        )
                    )
        if self.config.shuffle_deliveries:
            random.shuffle(jobs)
        with self.cond:
            for job in jobs:
                job.seq = next(self._seq)
                heapq.heappush(self.heap, job)
            self.cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is in flight or due before ``timeout`` elapses."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.inflight == 0 and not any(j.due <= deadline for j in self.heap):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.05))

    def reset(self) -> None:
        with self.cond:
            self.generation += 1
            self.heap.clear()
            self.log.clear()
            self.cond.notify_all()

    def deliveries(self) -> list[dict[str, Any]]:
        with self.cond:
            return [dict(d) for d in self.log]

    def stop(self) -> None:
        with self.cond:
            self._stopped = True
            self.cond.notify_all()

    # ----------------------------------------------------------- worker
    def _run(self) -> None:
        while True:
            with self.cond:
                while not self._stopped and (not self.heap or self.heap[0].due > time.monotonic()):
                    wait = self.heap[0].due - time.monotonic() if self.heap else None
                    self.cond.wait(wait if wait is None else max(wait, 0.001))
                if self._stopped:
                    return
                job = heapq.heappop(self.heap)
                self.inflight += 1
                generation = self.generation
            try:
                status, error = self._post(job)
            except Exception as exc:  # never let the worker die
                status, error = None, f"{type(exc).__name__}: {exc}"
            ok = status is not None and 200 <= status < 300
            if ok and self.on_success is not None and generation == self.generation:
                with contextlib.suppress(Exception):
                    self.on_success(job.event_id)
            with self.cond:
                self.inflight -= 1
                if generation == self.generation:
                    self.log.append(
                        {
                            "event_id": job.event_id,
                            "type": job.event_type,
                            "endpoint_id": job.endpoint_id,
                            "url": job.url,
                            "attempt": job.attempt,
                            "status": status,
                            "error": error,
                            "delivered_at": time.time(),
                        }
                    )
                    if not ok and job.attempt < MAX_ATTEMPTS:
                        delay = RETRY_SCHEDULE[job.attempt - 1] * self.config.retry_time_scale
                        retry = Job(
                            time.monotonic() + delay,
                            next(self._seq),
                            job.event_id,
                            job.event_type,
                            job.endpoint_id,
                            job.url,
                            job.secret,
                            job.payload,
                            job.attempt + 1,
                        )
                        heapq.heappush(self.heap, retry)
                self.cond.notify_all()

    @staticmethod
    def _post(job: Job) -> tuple[int | None, str | None]:
        header = sign(job.payload, job.secret, int(time.time()))
        request = urllib.request.Request(
            job.url,
            data=job.payload.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": header,
                "Accept": "*/*; q=0.5, application/xml",
            },
        )
        try:
            with _OPENER.open(request, timeout=REQUEST_TIMEOUT) as response:
                response.read()
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return None, str(reason)
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status}"
