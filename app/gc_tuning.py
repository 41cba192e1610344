"""Python's garbage collector in the long-running processes (gunicorn's workers, the applier).

A full collection walks every tracked object, and a worker holds about 140,000 of them once the
app is loaded (Flask, SQLAlchemy, the Stripe SDK, the routes): about 80 ms with the GIL held on
this machine, in which no request of the worker moves. Those objects live as long as the
process, so they are frozen once loaded (`gc.freeze`: "ignore them in all the future
collections") and collections walk only what requests leave behind. Same-run A/B (bench/peer.py,
BENCH_COMPARE; docs/performance.md, tenth pass): webhook ingest p99 21.9 -> 19.2 ms (its range
over the rounds 21-39 -> 16-21 ms), 1.06x the deliveries. A larger first generation on top
(threshold 20,000 instead of 700) was 0.94x: not kept.
"""

from __future__ import annotations

import gc


def freeze_loaded_objects() -> None:
    """Leave everything allocated so far out of all later collections."""
    gc.collect()  # what is garbage already goes now, not into the frozen generation
    gc.freeze()
