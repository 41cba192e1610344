"""Stripe black-holed for 30 s under load: does everything that doesn't need Stripe keep its
latency, and does checkout fail fast?

Serves the app with a fixed number of request threads (as a gunicorn gthread worker has) against
an in-process Stripe sandbox. Buyers (users who already have a Stripe customer, so checkout asks
Stripe first) keep creating checkout sessions; probes call `GET /api/health`, `GET /api/me` and
`POST /api/webhooks/stripe` in turn. Three phases: Stripe healthy, Stripe black-holed
(`fault_blackhole`: requests are held, never answered), Stripe healthy again. For each phase it
prints the probes' p50/p95/max and the checkouts' statuses and slowest answer (each request
counted in the phase it began in); the black-hole phase's probe medians are also given as a
ratio to the healthy phases'. Usage:

    .venv/bin/python bench/stripe_blackhole.py [--seconds 30] [--threads 8] [--buyers 8]

With `--unbounded` the app runs with the SDK's old settings (80 s read timeout, no bulkhead) for
comparison. SQLite in a temporary directory; figures are for comparing runs on one machine.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from app_instance import PooledWSGIServer  # noqa: E402  (tests/app_instance.py)
from flask_migrate import upgrade  # noqa: E402

from app import create_app  # noqa: E402
from app.auth import issue_dev_token  # noqa: E402
from app.stripe.gateway import StripeGateway  # noqa: E402
from app.stripe.setup import setup_products  # noqa: E402
from stripe_sandbox import Sandbox  # noqa: E402

KEY = "sk_test_bench_blackhole"
WEBHOOK_SECRET = "whsec_bench_blackhole"
JWT_SECRET = "bench-jwt-secret-0123456789-abcdefghijklmnop"


def token(user: str) -> dict[str, str]:
    jwt = issue_dev_token({"AUTH_JWT_SECRET": JWT_SECRET}, user, email=f"{user}@example.com")
    return {"Authorization": f"Bearer {jwt}"}


def signed_event(n: int) -> tuple[str, dict[str, str]]:
    payload = json.dumps(
        {
            "id": f"evt_bench_{n}_{time.monotonic_ns()}",
            "object": "event",
            "type": "customer.created",
            "created": int(time.time()),
            "data": {"object": {"id": "cus_bench", "object": "customer"}},
        }
    )
    stamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.{payload}".encode(), hashlib.sha256)
    headers = {"Stripe-Signature": f"t={stamp},v1={digest.hexdigest()}"}
    return payload, {**headers, "Content-Type": "application/json"}


def summary(seconds: list[float]) -> str:
    if not seconds:
        return "no answers"
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"n={len(ordered):4d}  p50 {statistics.median(ordered) * 1000:7.1f} ms  "
        f"p95 {p95 * 1000:7.1f} ms  max {ordered[-1] * 1000:8.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="black-hole duration")
    parser.add_argument("--healthy-seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--buyers", type=int, default=8)
    parser.add_argument("--unbounded", action="store_true", help="the old settings, to compare")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)

    sandbox = Sandbox()
    sandbox_url = sandbox.start()
    gateway = StripeGateway(KEY, api_version="2026-10-28.endive", api_base=sandbox_url)
    prices = setup_products(gateway).price_ids
    settings: dict[str, Any] = {
        "APP_ENV": "testing",
        "DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/bench.db",
        "STRIPE_SECRET_KEY": KEY,
        "STRIPE_API_BASE": sandbox_url,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_PRICE_ID_MONTHLY": prices["pro_monthly"],
        "STRIPE_PRICE_ID_YEARLY": prices["pro_yearly"],
        "FRONTEND_URLS": ["http://localhost:5173"],
        "AUTH_JWT_SECRET": JWT_SECRET,
        "WEB_THREADS": args.threads,
        "LOG_LEVEL": "CRITICAL",
    }
    if args.unbounded:
        settings.update(
            STRIPE_READ_TIMEOUT=80.0,
            STRIPE_CONNECT_TIMEOUT=30.0,
            STRIPE_MAX_NETWORK_RETRIES=2,
            STRIPE_MAX_CONCURRENT_CALLS=10_000,
            STRIPE_BREAKER_COOLDOWN=0,
        )
    app = create_app(settings)
    with app.app_context():
        upgrade()
    server = PooledWSGIServer("127.0.0.1", 0, app, args.threads)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    print(
        f"threads={args.threads} buyers={args.buyers} black-hole={args.seconds:.0f} s  "
        f"read timeout={app.config['STRIPE_READ_TIMEOUT']} s retries="
        f"{app.config['STRIPE_MAX_NETWORK_RETRIES']} bulkhead="
        f"{app.config['STRIPE_MAX_CONCURRENT_CALLS']} breaker="
        f"{app.config['STRIPE_BREAKER_FAILURES']}/{app.config['STRIPE_BREAKER_COOLDOWN']} s"
    )

    buyers = [f"buyer-{n}" for n in range(args.buyers)]
    for user in buyers:  # each gets a customer, so the next checkout asks Stripe first
        reply = requests.post(
            f"{url}/api/create-checkout-session", json={"plan": "monthly"}, headers=token(user)
        )
        reply.raise_for_status()

    phase = {"name": "healthy"}
    probes: dict[tuple[str, str], list[float]] = {}
    checkouts: dict[str, list[tuple[int, float]]] = {}
    stop = threading.Event()

    def buy(user: str) -> None:
        while not stop.is_set():
            started, name = time.monotonic(), phase["name"]  # counted in the phase it began in
            try:
                status = requests.post(
                    f"{url}/api/create-checkout-session",
                    json={"plan": "monthly"},
                    headers=token(user),
                    timeout=120,
                ).status_code
            except requests.RequestException:
                status = 0
            checkouts.setdefault(name, []).append((status, time.monotonic() - started))
            time.sleep(0.2)

    def probe_loop() -> None:
        session = requests.Session()
        n = 0
        while not stop.is_set():
            for kind in ("health", "me", "webhook"):
                started, name = time.monotonic(), phase["name"]
                try:
                    if kind == "health":
                        ok = session.get(f"{url}/api/health", timeout=120).ok
                    elif kind == "me":
                        ok = session.get(f"{url}/api/me", headers=token("reader"), timeout=120).ok
                    else:
                        payload, headers = signed_event(n)
                        ok = session.post(
                            f"{url}/api/webhooks/stripe", data=payload, headers=headers, timeout=120
                        ).ok
                except requests.RequestException:
                    ok = False
                took = time.monotonic() - started
                probes.setdefault((name, kind), []).append(took if ok else float("inf"))
                n += 1
            time.sleep(0.05)

    workers = [threading.Thread(target=buy, args=(user,), daemon=True) for user in buyers]
    workers.append(threading.Thread(target=probe_loop, daemon=True))
    for worker in workers:
        worker.start()
    time.sleep(args.healthy_seconds)
    phase["name"] = "black-holed"
    sandbox.configure(fault_blackhole=True)
    time.sleep(args.seconds)
    sandbox.configure(fault_blackhole=False)
    phase["name"] = "recovered"
    time.sleep(args.healthy_seconds)
    stop.set()
    for worker in workers:
        worker.join(timeout=130)

    for name in ("healthy", "black-holed", "recovered"):
        print(f"\n== {name}")
        for kind in ("health", "me", "webhook"):
            print(f"  {kind:8s} {summary(probes.get((name, kind), []))}")
        answers = checkouts.get(name, [])
        statuses = Counter(status for status, _ in answers)
        slowest = max((seconds for _, seconds in answers), default=0.0)
        print(f"  checkout statuses {dict(statuses)}  slowest {slowest:.2f} s")
    print("\nblack-holed p50 / healthy p50:")
    for kind in ("health", "me", "webhook"):
        healthy = probes.get(("healthy", kind), []) + probes.get(("recovered", kind), [])
        during = probes.get(("black-holed", kind), [])
        if healthy and during:
            ratio = statistics.median(during) / statistics.median(healthy)
            print(f"  {kind:8s} {ratio:.2f}x")
    server.shutdown()
    sandbox.stop()


if __name__ == "__main__":
    main()
