"""Where the rate limiter keeps its counters (Redis when REDIS_URL is set, else memory) and how
an unwell Redis is lived with: every call has a short connect and read timeout
(REDIS_TIMEOUT_MS), a failed call turns the limits off (fail open, as for a refused
connection) for REDIS_RETRY_SECONDS with one log line for the whole outage, and /readyz says
what Redis does (`probe`). A Redis that accepts connections and never answers used to cost
every signed-in request 5 s per Redis call."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
from limits.storage import RedisStorage, Storage, storage_from_string
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("app.ratelimit")  # the operators' existing log name for these lines

T = TypeVar("T")


def counter_storage(url: str, timeout_ms: int) -> Storage:
    if not url:
        return cast(Storage, storage_from_string("memory://"))
    seconds = max(1, timeout_ms) / 1000
    # No retries inside the client: one timeout is the whole price of a request, and the
    # guard below decides when to try Redis again.
    options: dict[str, Any] = {
        "socket_timeout": seconds,
        "socket_connect_timeout": seconds,
        "retry": Retry(NoBackoff(), 0),
        "retry_on_timeout": False,
        "health_check_interval": 0,
    }
    return cast(Storage, storage_from_string(url, **options))


# The `limits` library's fixed-window INCR (incr_expire.lua: the expiry is set when the key is
# created) over every key of a request at once: one Redis call instead of one per limit.
_INCR_EXPIRE_ALL = """
local counts = {}
for i, key in ipairs(KEYS) do
    local current = redis.call("incrby", key, 1)
    if current == 1 then
        redis.call("expire", key, ARGV[i])
    end
    counts[i] = current
end
return counts
"""


@functools.lru_cache(maxsize=16)
def _incr_expire_all(client: Any) -> Any:
    """The script registered on `client` (one per storage; redis-py loads it on first use)."""
    return client.register_script(_INCR_EXPIRE_ALL)


def hit_together(storage: Storage, keyed: list[tuple[str, int]]) -> list[int]:
    """Count one hit on each (key, expiry in seconds) of a fixed-window limiter: the counts
    afterwards, in order. Redis: one script call (EVALSHA) for all of them, with the same keys
    and expiry as the library's own `hit`, so its window stats read them; memory: one by one."""
    if not keyed:
        return []
    if isinstance(storage, RedisStorage):
        keys = [storage.prefixed_key(key) for key, _ in keyed]
        client: Any = storage.get_connection()
        counts = _incr_expire_all(client)(keys, [e for _, e in keyed])
        return [int(count) for count in counts]
    return [storage.incr(key, expiry) for key, expiry in keyed]


def failure_kind(exc: BaseException) -> str:
    """How Redis failed, for the log line and /readyz: timeout | refused | error."""
    if isinstance(exc, (redis.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, (redis.ConnectionError, ConnectionError)):
        return "timeout" if "timed out" in str(exc).lower() else "refused"
    return "error"


class StorageGuard:
    """Skips the counter storage for `retry_seconds` after it failed, so an outage costs one
    request one timeout per period instead of every request every Redis call."""

    def __init__(self, retry_seconds: float) -> None:
        self._retry_seconds = max(0.0, retry_seconds)
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self.outage: str | None = None  # the failure kind while Redis is considered down

    def call(self, request: Callable[[], T]) -> T | None:
        """`request()`'s result, or None when the storage is down (the caller fails open)."""
        if self.outage is not None and time.monotonic() < self._retry_at:
            return None
        try:
            result = request()
        except Exception as exc:
            self._failed(exc)
            return None
        if self.outage is not None:
            self._recovered()
        return result

    def _failed(self, exc: BaseException) -> None:
        kind = failure_kind(exc)
        with self._lock:
            self._retry_at = time.monotonic() + self._retry_seconds
            first = self.outage is None
            self.outage = kind
        if first:  # one line per outage, no traceback: requests go on unlimited
            log.warning(
                "rate limit storage unavailable (%s: %s); not limiting, retrying every %.0f s",
                kind,
                type(exc).__name__,
                self._retry_seconds,
            )

    def _recovered(self) -> None:
        with self._lock:
            if self.outage is None:
                return
            self.outage = None
        log.warning("rate limit storage answers again; limiting")


def probe(storage: Storage) -> str:
    """What /readyz reports about the counters: memory | ok | timeout | refused | error."""
    client = getattr(storage, "storage", None)
    if not isinstance(client, redis.Redis):
        return "memory"
    try:
        client.ping()
    except Exception as exc:
        return failure_kind(exc)
    return "ok"
