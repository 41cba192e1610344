"""One log line when a dependency starts refusing calls and one when it answers again, instead of
a line per refused call: a minute of a frozen database at a few hundred requests a second is
two lines an operator can read (when it began, how long it lasted, how many calls it cost),
not thousands that bury everything else. Each refusal is still logged, at DEBUG.

An outage ends at the first call that succeeds `settle` seconds after the last refusal (a
success squeezed between refusals, on a half-working dependency, does not end it; that would
log a start and an end line per refusal again), or at once when the caller knows for sure (the
database watchdog's ping answered)."""

from __future__ import annotations

import logging
import threading
import time


class OutageLog:
    """`started` is formatted with {cause}, `ended` with {lasted} (seconds) and {refused}."""

    def __init__(
        self,
        log: logging.Logger,
        started: str,
        ended: str,
        *,
        level: int = logging.ERROR,
        settle: float = 1.0,
    ) -> None:
        self._log = log
        self._started = started
        self._ended = ended
        self._level = level
        self._settle = settle
        self._lock = threading.Lock()
        self._since: float | None = None
        self._last_refusal = 0.0
        self._refused = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def refused(self, cause: str, *, count: bool = True) -> None:
        """A call was refused (or, `count=False`, the outage was seen without a refusal)."""
        now = time.monotonic()
        with self._lock:
            first = self._since is None
            since = self._since = now if self._since is None else self._since
            if first:
                self._refused = 0
            self._refused += count
            self._last_refusal = now
        if first:
            self._log.log(self._level, self._started.format(cause=cause))
        else:
            self._log.debug("refused (%s), %.1f s into the outage", cause, now - since)

    def answered(self, *, surely: bool = False) -> None:
        """A call succeeded. Called on every success: costs an attribute read when all is well."""
        if self._since is None:
            return
        now = time.monotonic()
        with self._lock:
            if self._since is None or (not surely and now - self._last_refusal < self._settle):
                return
            lasted, refused = now - self._since, self._refused
            self._since = None
        self._log.warning(self._ended.format(lasted=lasted, refused=refused))
