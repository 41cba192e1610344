"""CPU per webhook delivery in one process: our POST /api/webhooks/stripe (verify, record by
group commit, answer; the applier off) against bench/bare_app.py's HMAC-only route.

Both WSGI apps are called directly (no sockets, no gunicorn: the same for both), one delivery
at a time, in alternating rounds; each delivery of ours is one INSERT and one commit on the
PostgreSQL database given. CPU is this process's (`time.process_time`), so other load on the
machine barely moves it; the ratio ours / bare is what to quote.

    .venv/bin/python bench/ingest_cpu.py [--database-url postgresql://.../bench_x]
        [--events 2000] [--rounds 5] [--profile out.prof]

It drops and re-creates the database's tables (point it at a scratch database).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.peer import SECRET, app_env  # noqa: E402

if TYPE_CHECKING:
    from flask import Flask

PATH = "/api/webhooks/stripe"


def signed_events(n: int, run: str) -> list[tuple[str, bytes]]:
    """`customer.subscription.updated` events shaped as bench/peer.py's load sends them."""
    import stripe

    now = int(time.time())
    out = []
    for k in range(n):
        item = {
            "id": f"si_{k}",
            "object": "subscription_item",
            "current_period_start": now,
            "current_period_end": now + 30 * 86400,
            "quantity": 1,
            "price": {"id": "price_monthly", "object": "price", "recurring": {"interval": "month"}},
        }
        sub = {
            "id": f"sub_{run}_{k % 1000}",
            "object": "subscription",
            "customer": f"cus_{run}_{k % 1000}",
            "status": "active",
            "cancel_at_period_end": False,
            "metadata": {"userId": f"user{run}_{k % 1000}"},
            "current_period_start": now,
            "current_period_end": now + 30 * 86400,
            "items": {"object": "list", "data": [item]},
        }
        event = {
            "id": f"evt_cpu_{run}_{k}",
            "object": "event",
            "type": "customer.subscription.updated",
            "created": now + k,
            "livemode": False,
            "data": {"object": sub},
        }
        body = json.dumps(event, separators=(",", ":"))
        signature = stripe.WebhookSignature._compute_signature(f"{now}.{body}", SECRET)
        out.append((f"t={now},v1={signature}", body.encode()))
    return out


def environ(path: str, signature: str, body: bytes) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "3001",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:3001",
        "HTTP_STRIPE_SIGNATURE": signature,
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def deliver(
    app: Callable[..., Iterable[bytes]], path: str, events: list[tuple[str, bytes]]
) -> float:
    """CPU seconds per delivery over `events`; every answer must be a 200."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    started = time.process_time()
    for signature, body in events:
        result = app(environ(path, signature, body), start_response)
        b"".join(result)
        close = getattr(result, "close", None)
        if close is not None:
            close()
    spent = time.process_time() - started
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        raise SystemExit(f"{path}: {len(bad)} non-200 answers, e.g. {bad[0]}")
    return spent / len(events)


def scratch_database_parser() -> argparse.ArgumentParser:
    """The command line of a benchmark that runs the app in-process on a scratch database."""
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench_h1"
        ),
    )
    return parser


def app_on_scratch_database(database_url: str) -> Flask:
    """The app with bench/peer.py's settings and no applier, its tables dropped and created
    anew on `database_url`."""
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-cpu-"))
    os.environ.update(app_env(database_url, "http://127.0.0.1:9"))
    os.environ["WEBHOOK_APPLIER"] = "off"

    from app import create_app
    from app.extensions import db

    app = create_app()
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


def main() -> None:
    parser = scratch_database_parser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", help="write a cProfile of our rounds here")
    args = parser.parse_args()

    ours = app_on_scratch_database(args.database_url)
    from bench.bare_app import app as bare

    run = str(os.getpid())
    batches = [signed_events(args.events, f"{run}r{n}") for n in range(args.rounds + 1)]
    deliver(ours.wsgi_app, PATH, batches[-1][:200])  # warm-up: connections, caches
    deliver(bare.wsgi_app, PATH + "/hmac-only", batches[-1][:200])
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)
    figures: dict[str, list[float]] = {"ours": [], "bare": []}
    for n in range(args.rounds):
        order = ("ours", "bare") if n % 2 == 0 else ("bare", "ours")
        for name in order:
            if name == "ours":
                if profiler:
                    profiler.enable()
                figures[name].append(deliver(ours.wsgi_app, PATH, batches[n]))
                if profiler:
                    profiler.disable()
            else:
                figures[name].append(deliver(bare.wsgi_app, PATH + "/hmac-only", batches[n]))
    if profiler and args.profile:
        profiler.dump_stats(args.profile)
    ours_ms = statistics.median(figures["ours"]) * 1000
    bare_ms = statistics.median(figures["bare"]) * 1000
    print(
        f"CPU per delivery, {args.rounds} rounds x {args.events} events, medians:"
        f" ours {ours_ms:.3f} ms, bare (HMAC only) {bare_ms:.3f} ms,"
        f" ours / bare = {ours_ms / bare_ms:.2f}x"
    )
    print("  ours rounds:", " ".join(f"{x * 1000:.3f}" for x in figures["ours"]))
    print("  bare rounds:", " ".join(f"{x * 1000:.3f}" for x in figures["bare"]))


if __name__ == "__main__":
    main()
