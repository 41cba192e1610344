"""The sustained part of `make bench-peer`: our server at a fixed event rate (an open loop:
wrk paces each request to its slot, not to the previous answer), the backlog sampled while it
runs, then the apply lag of every event of the run read from the rows.

The lag is received -> marked applied (`processed_at` is the applying transaction's clock, taken
when it claims the batch, so the commit of that batch, a few ms, is not in it).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

# Paces each wrk thread to RATE / threads requests per second with the monotonic clock
# (LuaJIT's ffi): a request waits for its slot; a late server gets the missed slots at once.
PACING = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local next_slot = nil
function delay()
  local t = now_ms()
  if next_slot == nil then next_slot = t end
  local slot = next_slot
  next_slot = next_slot + INTERVAL_MS
  if slot > t then return math.floor(slot - t) end
  return 0
end
"""

WRK_THREADS = 2

Pending = Callable[[str], tuple[int, int, int]]


def sustained(
    load: Any,
    base_url: str,
    database_url: str,
    secret: str,
    rate: int,
    seconds: int,
    conns: int,
    pending: Pending,
) -> list[str]:
    """Drive `rate` events/s for `seconds`; lines describing what happened."""
    data, lua = load.events(int(rate * seconds * 1.2) + 1000, 1000, secret, "/api/webhooks/stripe")
    with open(lua, "a") as script:
        script.write(f"INTERVAL_MS = {1000.0 * WRK_THREADS / rate}\n" + PACING)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    started = time.time()

    def sample() -> None:
        while not stop.wait(2.0):
            samples.append((time.time() - started, pending(database_url)[0]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    since = row[0]
    argv = ["wrk", f"-t{WRK_THREADS}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", lua]
    out = subprocess.run(
        [*argv, base_url], env=dict(os.environ, EVENTS_FILE=data), capture_output=True, text=True
    ).stdout
    stop.set()
    sampler.join()
    drained_in = _drain(database_url, pending, time.time() + 60)
    lag = _lag(database_url, since)
    rps = _grab(out, "Requests/sec:")
    non2xx = _grab(out, "Non-2xx or 3xx responses:") or 0
    trend = ", ".join(f"{t:.0f}s:{n}" for t, n in samples)
    first = [n for t, n in samples if t < seconds / 2]
    second = [n for t, n in samples if seconds / 2 <= t <= seconds]
    verdict = "flat" if not second or max(second) <= max([*first, 0]) + rate // 2 else "GROWING"
    _pending, parked, applied = pending(database_url)
    return [
        f"sent {rps:.0f} events/s (target {rate}), non-2xx {non2xx:.0f}",
        f"backlog (pending events) every 2 s: {trend or '-'} -> {verdict}",
        f"drained {drained_in:.1f} s after the load stopped; applied {applied}, parked {parked}",
        f"apply lag over {lag['n']} events of the run: p50 {lag['p50']:.0f} ms,"
        f" p99 {lag['p99']:.0f} ms, max {lag['max']:.0f} ms",
    ]


def _drain(database_url: str, pending: Pending, deadline: float) -> float:
    start = time.time()
    while pending(database_url)[0] and time.time() < deadline:
        time.sleep(0.2)
    return time.time() - start


def _lag(database_url: str, since: Any) -> dict[str, float]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag) FROM ("
            " SELECT extract(epoch FROM processed_at - created_at) * 1000 AS lag"
            " FROM webhook_events WHERE created_at >= %s AND processed) AS lags",
            (since,),
        ).fetchone()
    assert row is not None
    n, p50, p99, worst = row
    return {"n": n, "p50": p50 or 0.0, "p99": p99 or 0.0, "max": worst or 0.0}


def _grab(text: str, label: str) -> float:
    for line in text.splitlines():
        if line.strip().startswith(label):
            return float(line.split(label, 1)[1].split()[0])
    return 0.0
