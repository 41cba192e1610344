"""Webhook acknowledgement: latency and Stripe calls per event, in order and shuffled.

Plays subscription histories in an in-process Stripe sandbox (checkout, cancel at period end,
resume, price swap, renewal on a test clock, cancellation), collects the events Stripe emitted,
then POSTs them signed to the app served on a real port, one at a time:

- in order, each once (what Stripe usually does);
- shuffled, each twice (what Stripe may do).

For each pass it prints the acknowledgement latency seen by the sender (p50/p95/p99), the time
from the handler's database commit to the sender holding the answer, and how many Stripe API
calls the app made per event. Usage:

    .venv/bin/python bench/webhook_ack.py [--histories 40] [--database-url URL]   (or: make bench)

SQLite in a temporary directory by default; `--database-url postgresql://...` (or
BENCH_DATABASE_URL) measures PostgreSQL; it drops and re-creates that database's tables, so
point it at a scratch database. The server is Werkzeug's threaded server: figures
are relative, for spotting regressions, not a production capacity claim.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import event, text
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app
from app.extensions import db
from app.stripe.gateway import StripeGateway
from app.stripe.setup import setup_products
from stripe_sandbox import Sandbox

KEY = "sk_test_bench_webhooks"
SECRET = "whsec_bench_webhooks"
T0 = 1_930_000_000
DAY = 86_400


def sign(payload: str) -> str:
    timestamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def play_histories(
    gateway: StripeGateway, prices: dict[str, str], count: int, *, toggle_in_one_second: bool
) -> set[str]:
    """`count` customers, each through a whole lifecycle. With `toggle_in_one_second` the
    cancel and the resume happen in the same second (a user clicking twice), which the events
    alone can't order."""
    client = gateway.client
    customers: set[str] = set()
    for n in range(count):
        clock = client.v1.test_helpers.test_clocks.create({"frozen_time": T0})

        def advance(seconds: int, clock_id: str = clock.id) -> None:
            now = client.v1.test_helpers.test_clocks.retrieve(clock_id).frozen_time
            client.v1.test_helpers.test_clocks.advance(clock_id, {"frozen_time": now + seconds})

        user = f"bench-{'toggle' if toggle_in_one_second else 'spaced'}-{n}"
        customer = client.v1.customers.create(
            {"metadata": {"userId": user}, "test_clock": clock.id}
        )
        session = client.v1.checkout.sessions.create(
            {
                "mode": "subscription",
                "customer": customer.id,
                "client_reference_id": user,
                "line_items": [{"price": prices["pro_monthly"], "quantity": 1}],
                "success_url": "http://localhost:5173/done",
                "subscription_data": {"metadata": {"userId": user}},
            }
        )
        paid = requests.post(
            str(session.url), data={"card_number": "4242424242424242"}, allow_redirects=False
        )
        assert paid.status_code == 303, paid.text[:200]
        sub_id = str(client.v1.checkout.sessions.retrieve(session.id).subscription)
        advance(60)
        client.v1.subscriptions.update(sub_id, {"cancel_at_period_end": True})
        if not toggle_in_one_second:
            advance(60)
        client.v1.subscriptions.update(sub_id, {"cancel_at_period_end": False})
        advance(60)
        item = client.v1.subscriptions.retrieve(sub_id)["items"].data[0]
        client.v1.subscriptions.update(
            sub_id, {"items": [{"id": item.id, "price": prices["pro_yearly"]}]}
        )
        advance(400 * DAY)  # renews once on the yearly plan
        advance(60)
        client.v1.subscriptions.cancel(sub_id)
        customers.add(customer.id)
    return customers


def concerning(events: list[dict[str, Any]], customers: set[str]) -> list[dict[str, Any]]:
    def customer_of(evt: dict[str, Any]) -> Any:
        obj = evt["data"]["object"]
        return obj["id"] if obj.get("object") == "customer" else obj.get("customer")

    return [evt for evt in events if customer_of(evt) in customers]


def all_events(sandbox_url: str) -> list[dict[str, Any]]:
    """Every event the sandbox holds, oldest first, as Stripe's JSON."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    headers = {"Authorization": f"Bearer {KEY}"}
    while True:
        page = requests.get(f"{sandbox_url}/v1/events", params=params, headers=headers).json()
        events.extend(page["data"])
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    events.reverse()
    return events


class CommitClock:
    """When the last database commit happened (the sender waits for each answer, so the
    last commit before an answer is that request's)."""

    def __init__(self) -> None:
        self.last = 0.0
        event.listen(Session, "after_commit", self._mark)

    def _mark(self, _session: Session) -> None:
        self.last = time.perf_counter()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def deliver(
    url: str, events: list[dict[str, Any]], sandbox: Sandbox, commits: CommitClock
) -> dict[str, Any]:
    http = requests.Session()
    stripe_calls_before = len(sandbox.requests)
    total: list[float] = []
    after_commit: list[float] = []
    for evt in events:
        payload = json.dumps(evt)
        headers = {"Stripe-Signature": sign(payload), "Content-Type": "application/json"}
        started = time.perf_counter()
        reply = http.post(url, data=payload, headers=headers)
        done = time.perf_counter()
        assert reply.status_code == 200, reply.text
        total.append((done - started) * 1000)
        if commits.last > started:
            after_commit.append((done - commits.last) * 1000)
    calls = len(sandbox.requests) - stripe_calls_before
    return {
        "events": len(events),
        "p50": percentile(total, 50),
        "p95": percentile(total, 95),
        "p99": percentile(total, 99),
        "mean": statistics.fmean(total),
        "commit_p50": percentile(after_commit, 50),
        "commit_p95": percentile(after_commit, 95),
        "stripe_calls": calls,
    }


def clear(app: Any) -> None:
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--histories", type=int, default=40)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    sandbox = Sandbox()
    sandbox_url = sandbox.start("127.0.0.1", 0)
    workdir = tempfile.mkdtemp(prefix="bench-webhooks-")
    database_url = args.database_url or f"sqlite:///{workdir}/bench.db"
    app = create_app(
        {
            "APP_ENV": "testing",
            "DATABASE_URL": database_url,
            "STRIPE_SECRET_KEY": KEY,
            "STRIPE_API_BASE": sandbox_url,
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "STRIPE_MAX_NETWORK_RETRIES": 0,
            "LOG_LEVEL": "WARNING",
        }
    )
    from flask_migrate import upgrade

    with app.app_context():
        db.drop_all()
        db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()
        upgrade()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/api/webhooks/stripe"

    gateway = StripeGateway(KEY, api_version=app.config["STRIPE_API_VERSION"], api_base=sandbox_url)
    started = time.perf_counter()
    prices = setup_products(gateway).price_ids
    spaced_customers = play_histories(gateway, prices, args.histories, toggle_in_one_second=False)
    toggle_customers = play_histories(
        gateway, prices, max(1, args.histories // 4), toggle_in_one_second=True
    )
    events = all_events(sandbox_url)
    spaced = concerning(events, spaced_customers)
    toggles = concerning(events, toggle_customers)
    print(
        f"histories: {args.histories} with every change in its own second "
        f"({len(spaced)} events), {max(1, args.histories // 4)} that cancel and resume in one "
        f"second ({len(toggles)} events); played in {time.perf_counter() - started:.1f}s; "
        f"database: {database_url.split('://')[0]}"
    )
    commits = CommitClock()
    rng = random.Random(args.seed)
    passes = {
        "spaced, in order, once": spaced,
        "spaced, shuffled, twice": rng.sample(spaced + spaced, 2 * len(spaced)),
        "toggles, in order, once": toggles,
        "toggles, shuffled, twice": rng.sample(toggles + toggles, 2 * len(toggles)),
    }
    print(
        f"{'pass':<25} {'events':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'commit->ack p50/p95 ms':>23} {'Stripe calls/event':>19}"
    )
    for name, batch in passes.items():
        clear(app)
        stats = deliver(url, batch, sandbox, commits)
        print(
            f"{name:<25} {stats['events']:>6} {stats['p50']:>7.2f} {stats['p95']:>7.2f} "
            f"{stats['p99']:>7.2f} {stats['commit_p50']:>11.2f} / {stats['commit_p95']:<9.2f} "
            f"{stats['stripe_calls'] / stats['events']:>19.4f}"
        )
    server.shutdown()
    sandbox.stop()


if __name__ == "__main__":
    main()
