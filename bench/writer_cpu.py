"""CPU of the webhook inbox's write per batch and per event, by batch size: what the writer
thread of each worker (app/asgi.py `AsyncInbox`) spends on one group commit, as it spends it
(an app context, `record_batch`, the statement on the writer's own connection).

Batch sizes alternate round by round; CPU is this process's (`time.process_time`), so other load
on the machine barely moves it. Under bench-peer's load a worker's batches are small (its 8
connections' deliveries that arrived while the previous write ran): the per-event figure at
batch 1-2 against the one at 8 or 32 is what larger batches would save.

    .venv/bin/python bench/writer_cpu.py [--database-url postgresql://.../bench_x]
        [--batches 1000] [--sizes 1,2,8,32] [--rounds 3]

It drops and re-creates the database's tables (point it at a scratch database).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest_cpu import (  # noqa: E402
    app_on_scratch_database,
    scratch_database_parser,
    signed_events,
)


def main() -> None:
    parser = scratch_database_parser()
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--sizes", default="1,2,8,32")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    app = app_on_scratch_database(args.database_url)

    from app.billing.webhooks import service
    from app.billing.webhooks.store import Recorded

    body = signed_events(1, "writer")[0][1].decode()
    made = 0

    def batch(size: int) -> list[Recorded]:
        nonlocal made
        made += size
        return [
            Recorded(
                id=f"evt_writer_{os.getpid()}_{made - k}",
                type="customer.subscription.updated",
                data=body,
                raw_body=None,
                stripe_created=int(time.time()),
                received_at=datetime.now(UTC),
                sender_ip="127.0.0.1",
                request_id="bench-writer",
            )
            for k in range(size)
        ]

    def write(events: list[Recorded]) -> None:
        with app.app_context():  # as AsyncInbox._write
            service.record_batch(events)

    write(batch(8))  # the writer's connection, the prepared statement
    per_batch: dict[int, list[float]] = {size: [] for size in sizes}
    for n in range(args.rounds):
        for size in sizes if n % 2 == 0 else reversed(sizes):
            batches = [batch(size) for _ in range(args.batches)]
            started = time.process_time()
            for events in batches:
                write(events)
            per_batch[size].append((time.process_time() - started) / args.batches)
    print(f"The inbox's write, CPU ms, {args.rounds} rounds x {args.batches} batches, medians:")
    for size in sizes:
        ms = statistics.median(per_batch[size]) * 1000
        print(f"  batch {size:3}: {ms:.3f} per batch, {ms / size:.3f} per event")


if __name__ == "__main__":
    main()
