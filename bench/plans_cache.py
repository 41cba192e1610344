"""GET /api/plans: the cached table against a Stripe read per request, side by side.

Runs the app in-process (SQLite in a temporary directory) against an in-process Stripe sandbox
and alternates, round after round, N requests with the cache (the default: one row read) and
N requests with PLANS_CACHE_SECONDS=0 (the price reads from Stripe on every request, which is
what the cache avoids). Prints the median latency of each, their ratio, and Stripe calls per
request. Figures are relative (the sandbox answers in-process, far faster than Stripe would).

    .venv/bin/python bench/plans_cache.py [--rounds 10] [--requests 20]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask_migrate import upgrade

from app import create_app
from app.stripe.gateway import StripeGateway
from app.stripe.setup import setup_products
from stripe_sandbox import Sandbox

KEY = "sk_test_bench_plans"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    sandbox = Sandbox()
    sandbox.start(host="127.0.0.1", port=0)
    prices = setup_products(
        StripeGateway(KEY, api_version="2026-10-28.endive", api_base=sandbox.url)
    ).price_ids
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "APP_ENV": "testing",
                "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                "STRIPE_SECRET_KEY": KEY,
                "STRIPE_API_BASE": sandbox.url,
                "STRIPE_PRICE_ID_MONTHLY": prices["pro_monthly"],
                "STRIPE_PRICE_ID_YEARLY": prices["pro_yearly"],
                "STRIPE_MAX_NETWORK_RETRIES": 0,
                "LOG_LEVEL": "ERROR",
            }
        )
        with app.app_context():
            upgrade()
        client = app.test_client()
        timings: dict[str, list[float]] = {"cached": [], "stripe each time": []}
        calls: dict[str, int] = {"cached": 0, "stripe each time": 0}
        for _ in range(args.rounds):
            for label, ttl in (("cached", 300), ("stripe each time", 0)):
                app.config["PLANS_CACHE_SECONDS"] = ttl
                client.get("/api/plans")  # warm (fills the cache for the cached pass)
                before = len(sandbox.requests)
                for _ in range(args.requests):
                    start = time.perf_counter()
                    assert client.get("/api/plans").status_code == 200
                    timings[label].append((time.perf_counter() - start) * 1000)
                calls[label] += len(sandbox.requests) - before
    sandbox.stop()
    total = args.rounds * args.requests
    medians = {label: statistics.median(values) for label, values in timings.items()}
    for label, median in medians.items():
        print(
            f"{label:>17}: median {median:6.2f} ms  p95 "
            f"{statistics.quantiles(timings[label], n=20)[18]:6.2f} ms  "
            f"Stripe calls/request {calls[label] / total:.2f}"
        )
    print(
        f"ratio (stripe each time / cached): {medians['stripe each time'] / medians['cached']:.1f}x"
    )


if __name__ == "__main__":
    main()
