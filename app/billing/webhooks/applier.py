"""The applier: recorded events applied in order, in batches, exactly once.

`apply_ready` takes a batch of due events (oldest first; rows another applier holds are skipped,
so any number of processes or hosts can apply), applies each with its handler and marks it
processed, all in one transaction: an event is applied if and only if it is marked. If one
event of the batch fails, the batch is applied again event by event (each in a savepoint), so
the others still go through; the failing one is tried again later with back-off and parked
after `WEBHOOK_APPLY_MAX_ATTEMPTS`, never blocking the rest.

Order: within a batch by Stripe's `created`; across appliers the ordering rule
(`subscriptions/ordering.py`) makes the outcome the same in any order, as it does for shuffled
deliveries.

Where the loop (`Applier`) runs is WEBHOOK_APPLIER's choice: "process" (production's default)
runs it as `flask billing apply`, one process per host that gunicorn's master keeps running
(applier_process.py), polling every `WEBHOOK_APPLY_POLL_SECONDS` (0.05 s); "thread" runs it as
a thread in each web process, woken by the inbox after each commit; "off" leaves it to
operators' `flask billing apply`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask

from app.billing.webhooks import applier_store, store
from app.billing.webhooks.backlog import DueProbe, backlog
from app.billing.webhooks.handlers import HANDLERS, STATE_EVENT_TYPES, apply_state_events
from app.db import (
    LockConflict,
    is_lock_conflict,
    retry_on_deadlock,
    rollback_quietly,
    unit_of_work,
)
from app.extensions import db
from app.models import utcnow
from app.observability import metrics
from app.safe_text import db_safe, for_log
from app.stripe.gateway import StripeGateway

log = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 2000
BACKLOG_EVERY = 5.0  # seconds between two readings of the backlog for the metrics


@dataclass(frozen=True)
class Settings:
    batch: int = 200
    max_attempts: int = 25
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 600.0

    @classmethod
    def from_config(cls, config: Any) -> Settings:
        return cls(
            batch=int(config["WEBHOOK_APPLY_BATCH"]),
            max_attempts=int(config["WEBHOOK_APPLY_MAX_ATTEMPTS"]),
            backoff_seconds=float(config["WEBHOOK_APPLY_BACKOFF_SECONDS"]),
            max_backoff_seconds=float(config["WEBHOOK_APPLY_MAX_BACKOFF_SECONDS"]),
        )

    def retry_at(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after `attempts` failed attempts; None once they are used up."""
        if attempts >= self.max_attempts:
            return None
        delay = min(self.backoff_seconds * 2 ** (attempts - 1), self.max_backoff_seconds)
        return now + timedelta(seconds=delay)


@dataclass
class Applied:
    """What one pass did."""

    applied: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.applied) + len(self.ignored) + len(self.failed)


def apply_ready(gateway: StripeGateway, settings: Settings) -> Applied:
    """Apply one batch of due events; what it did (an empty result: nothing was due, or the
    batch lost a lock race twice to another applier: it is claimed again at the next pass).

    A deadlock with another applier (two loops or hosts whose batches touch the same users in
    another order) is no event's failure: the whole batch is rolled back and taken again, no
    attempt counted, instead of being applied event by event."""
    try:
        return retry_on_deadlock(lambda: _apply_one_batch(gateway, settings))
    except LockConflict as exc:
        log.info("webhook batch: %s; taken again at the next pass", exc)
        return Applied()


def _apply_one_batch(gateway: StripeGateway, settings: Settings) -> Applied:
    result = Applied()
    with unit_of_work():
        now = utcnow()
        batch = store.claim_ready(settings.batch, now)
        if not batch:
            return result
        try:
            with db.session.begin_nested():
                _apply_batch(batch, gateway, result)
        except Exception as exc:  # find the culprit: the same batch again, one savepoint per event
            if is_lock_conflict(exc):
                raise
            log.info(
                "webhook batch of %d failed as a whole (%s); applying its events one by one",
                len(batch),
                for_log(exc, 300),
            )
            result = Applied()
            for row in batch:
                _apply_alone(row, gateway, result)
        _finish(batch, result, settings, now)
    _observe(batch, result)
    return result


def _apply_batch(batch: Any, gateway: StripeGateway, result: Applied) -> None:
    """Each run of consecutive subscription-state events together (set-based), any other
    event by its handler, in the batch's order."""
    run: list[tuple[Any, dict[str, Any]]] = []
    for row in batch:
        data_object = _object(row)
        if row.type in STATE_EVENT_TYPES and isinstance(data_object.get("id"), str):
            run.append((row, data_object))
            continue
        _apply_run(run, gateway, result)
        run = []
        _apply(row, gateway, result)
    _apply_run(run, gateway, result)


def _apply_run(
    run: list[tuple[Any, dict[str, Any]]], gateway: StripeGateway, result: Applied
) -> None:
    if run:
        apply_state_events([(obj, int(row.stripe_created or 0)) for row, obj in run], gateway)
        result.applied.extend(row.id for row, _obj in run)


def _object(row: Any) -> dict[str, Any]:
    data_object = ((row.data or {}).get("data") or {}).get("object")
    return data_object if isinstance(data_object, dict) else {}


def _apply(row: Any, gateway: StripeGateway, result: Applied) -> None:
    handler, _reason = HANDLERS.get(row.type, (None, ""))
    if handler is None:
        result.ignored.append(row.id)
        return
    data_object = (row.data or {}).get("data", {}).get("object") or {}
    handler(data_object, int(row.stripe_created or 0), gateway)
    result.applied.append(row.id)


def _apply_alone(row: Any, gateway: StripeGateway, result: Applied) -> None:
    try:
        with db.session.begin_nested():
            _apply(row, gateway, result)
    except Exception as exc:
        if is_lock_conflict(exc):  # another applier's batch: this one is taken again whole
            raise
        log.exception("webhook %s (%s) failed to apply", for_log(row.id), for_log(row.type))
        result.failed[row.id] = str(db_safe(f"{type(exc).__name__}: {exc}"))[:MAX_ERROR_LENGTH]


def _finish(batch: Any, result: Applied, settings: Settings, now: datetime) -> None:
    types = {row.id: row.type for row in batch}
    applier_store.finish_batch(
        [(i, types[i], "applied") for i in result.applied]
        + [(i, types[i], "ignored") for i in result.ignored],
        now,
    )
    attempts = {row.id: row.attempts for row in batch}
    for event_id, error in result.failed.items():
        retry_at = settings.retry_at(attempts[event_id] + 1, now)
        store.mark_failed(event_id, error, retry_at=retry_at, now=now)


def _observe(batch: Any, result: Applied) -> None:
    """One log line and one metrics update for the batch: how many events, of which types,
    with what outcomes, and their apply lag (each event's in the lag histogram). Which event
    did what is in the audit log (`webhook.applied`/`webhook.ignored`, one entry per event,
    written with it) and `flask billing events`; a failed event also gets a WARNING line of
    its own. One line per event was most of the log volume and a share of the applier's CPU
    under load (docs/performance.md, "applier")."""
    now = utcnow()
    outcomes = dict.fromkeys(result.applied, "applied")
    outcomes.update(dict.fromkeys(result.ignored, "ignored"))
    outcomes.update(dict.fromkeys(result.failed, "failed"))
    counts: Counter[tuple[str, str]] = Counter()
    lags: dict[str, list[float]] = {}
    for row in batch:
        outcome = outcomes[row.id]
        received = (
            row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=now.tzinfo)
        )
        lag = max(0.0, (now - received).total_seconds())
        counts[row.type if len(row.type) <= 100 else "", outcome] += 1
        lags.setdefault(outcome, []).append(lag)
        if outcome == "failed":
            log.warning(
                "webhook event",
                extra={
                    "event_id": row.id,
                    "event_type": row.type,
                    "outcome": outcome,
                    "lag_ms": round(lag * 1000, 2),
                },
            )
    metrics.observe_webhook_batch(counts, lags)
    if not log.isEnabledFor(logging.INFO):
        return
    every = sorted(lag for seconds in lags.values() for lag in seconds)
    types: Counter[str] = Counter()
    for (event_type, _outcome), count in counts.items():
        types[event_type] += count
    log.info(
        "webhook batch",
        extra={
            "events": len(batch),
            "applied": len(result.applied),
            "ignored": len(result.ignored),
            "failed": len(result.failed),
            "event_types": dict(types),
            "first_event_id": batch[0].id,
            "last_event_id": batch[-1].id,
            "lag_ms_p50": round(every[len(every) // 2] * 1000, 2),
            "lag_ms_max": round(every[-1] * 1000, 2),
        },
    )


def drain(gateway: StripeGateway, settings: Settings) -> int:
    """Apply until no event is due; how many were taken (failures included)."""
    total = 0
    while True:
        taken = apply_ready(gateway, settings).count
        total += taken
        if taken < settings.batch:
            return total


def apply_now(event_ids: list[str], gateway: StripeGateway, settings: Settings) -> None:
    """Make these events due now (parked, waiting for a retry, or applied already: a replay)
    and apply what is due."""
    with unit_of_work():
        store.unpark(event_ids)
    drain(gateway, settings)


class Applier:
    """The background applier of one app: a daemon thread in the app's context."""

    def __init__(self, app: Flask, poll_seconds: float) -> None:
        self.app = app
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the thread once per process (a forked worker starts its own)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="webhook-applier", daemon=True)
            self._thread.start()

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def nudge(self) -> None:
        """Events were just recorded: apply them now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def serve(self, threads: int = 1) -> None:
        """Run the loop in this thread and in `threads - 1` more until `stop()` (a signal
        handler may call it): the applier process. Each loop claims batches of its own (rows
        another holds are skipped); a new user's first event is a dozen round trips to the
        database and little CPU, so a second loop applies while the first waits
        (docs/performance.md, "applier threads"). Returns once every loop has finished the
        batch in hand."""
        self._stop.clear()
        loops = [
            threading.Thread(
                target=self._run, args=(False,), name=f"webhook-applier-{n}", daemon=True
            )
            for n in range(1, threads)
        ]
        for loop in loops:
            loop.start()
        try:
            self._run()
        finally:
            self._stop.set()
            for loop in loops:
                loop.join()

    def _run(self, observes_backlog: bool = True) -> None:
        settings = Settings.from_config(self.app.config)
        failing_since: float | None = None
        with self.app.app_context():
            probe = DueProbe(db.engine)
        idle = False  # the last pass found nothing: poll with the cheap probe until it does
        backlog_at = 0.0
        while not self._stop.is_set():
            nudged = self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if observes_backlog and time.monotonic() - backlog_at >= BACKLOG_EVERY:
                backlog_at = time.monotonic()
                self._observe_backlog()
            if idle and not nudged and not probe.anything_due():
                continue
            with self.app.app_context():
                try:
                    idle = drain(self.app.extensions["stripe_gateway"], settings) == 0
                except Exception as exc:  # the database is away: one line per outage
                    idle = False
                    rollback_quietly()
                    if failing_since is None:
                        failing_since = time.monotonic()
                        log.error("webhook applier: %s; retrying", for_log(exc, 300))
                    self._stop.wait(min(self.poll_seconds * 4, 5.0))
                else:
                    if failing_since is not None:
                        log.warning(
                            "webhook applier: working again after %.1f s",
                            time.monotonic() - failing_since,
                        )
                        failing_since = None
                finally:
                    db.session.remove()
        probe.close()

    def _observe_backlog(self) -> None:
        """The backlog gauges (billing_webhook_backlog_events, ..._oldest_pending_seconds)."""
        with self.app.app_context():
            try:
                with db.engine.connect() as connection:
                    waiting = backlog(connection)
            except Exception:  # the pass below reports the outage
                return
        metrics.observe_backlog(waiting.pending, waiting.oldest_seconds)
