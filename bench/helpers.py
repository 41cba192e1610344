"""Pure helpers of the benchmark harness (no I/O): statistics, Stripe signatures, the request
files the wrk script reads, wrk's result line, and a PostgreSQL wire-protocol message counter.

Tested in tests/test_bench_helpers.py so the harness cannot rot silently.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import statistics
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

WRK_RESULT_PREFIX = "BENCH_RESULT "


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty sample."""
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0 <= pct <= 100:
        raise ValueError("pct must be between 0 and 100")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil(n * pct / 100), at least 1
    return float(ordered[int(rank) - 1])


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def ratio(ours: float, baseline: float) -> float | None:
    """ours / baseline, or None when the baseline measured nothing."""
    return ours / baseline if baseline else None


def sign_payload(payload: str, secret: str, timestamp: int) -> str:
    """A Stripe-Signature header value: `t=<ts>,v1=<HMAC-SHA256 of "<ts>.<payload>">`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def request_line(path: str, header_value: str, body: str = "") -> str:
    """One line of a request file for bench/requests.lua: path, header value, body (tab
    separated). JSON from json.dumps has no raw tab or newline, which the asserts keep true."""
    for part in (path, header_value, body):
        if "\t" in part or "\n" in part:
            raise ValueError("request file fields must not contain tabs or newlines")
    return f"{path}\t{header_value}\t{body}\n"


def parse_wrk_result(stdout: str) -> dict[str, Any]:
    """The JSON line bench/requests.lua prints from done(), with derived figures
    (throughput, latencies in ms)."""
    for line in stdout.splitlines():
        if line.startswith(WRK_RESULT_PREFIX):
            raw = json.loads(line[len(WRK_RESULT_PREFIX) :])
            break
    else:
        raise ValueError("no result line in wrk output")
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw["errors"].values())
    return {
        "requests": raw["requests"],
        "seconds": seconds,
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": errors,
        "non_2xx": raw["errors"].get("status", 0),
        "wrapped": raw.get("wrapped", 0),
    }


# --------------------------------------------------------------------- PostgreSQL wire
# Frontend messages before start-up completes have no type byte: SSLRequest, GSSENCRequest,
# CancelRequest and the StartupMessage itself are identified by a code after the length.
_SPECIAL_CODES = {80877103: "ssl", 80877104: "gss", 80877102: "cancel"}


@dataclass
class WireCounts:
    """What a client sent: `statements` = simple queries (Q) + extended-protocol Executes
    (E); `round_trips` = Q + Sync (S), each of which waits for the server's ReadyForQuery."""

    statements: int = 0
    round_trips: int = 0
    queries: list[str] = field(default_factory=list)  # text of each statement executed

    def add(self, other: WireCounts) -> None:
        self.statements += other.statements
        self.round_trips += other.round_trips
        self.queries.extend(other.queries)

    def minus(self, earlier: WireCounts) -> WireCounts:
        """What was sent since `earlier` (a snapshot of the same counts)."""
        return WireCounts(
            self.statements - earlier.statements,
            self.round_trips - earlier.round_trips,
            self.queries[len(earlier.queries) :],
        )


class FrontendParser:
    """Incremental parser of one client->server PostgreSQL stream (protocol 3, no TLS)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.started = False
        self.counts = WireCounts()
        self.prepared: dict[bytes, str] = {}  # statement name (b"" = unnamed) -> text

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return
                (length,) = struct.unpack("!I", self.buffer[:4])
                if len(self.buffer) < length:
                    return
                (code,) = struct.unpack("!I", self.buffer[4:8])
                self.buffer = self.buffer[length:]
                if code not in _SPECIAL_CODES:
                    self.started = True
                continue
            if len(self.buffer) < 5:
                return
            kind = self.buffer[:1]
            (length,) = struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            payload = self.buffer[5 : 1 + length]
            self.buffer = self.buffer[1 + length :]
            self._count(kind, payload)

    def _count(self, kind: bytes, payload: bytes) -> None:
        if kind == b"Q":
            self.counts.statements += 1
            self.counts.round_trips += 1
            self.counts.queries.append(payload.rstrip(b"\0").decode(errors="replace"))
        elif kind == b"E":
            self.counts.statements += 1
        elif kind == b"S":
            self.counts.round_trips += 1
        elif kind == b"P":
            name, _, rest = payload.partition(b"\0")
            self.prepared[name] = rest.partition(b"\0")[0].decode(errors="replace")
        elif kind == b"B":
            _portal, _, rest = payload.partition(b"\0")
            self.counts.queries.append(self.prepared.get(rest.partition(b"\0")[0], "?"))
