"""In-process cost of the hot paths: CPU time and SQL statements per request, serial.

Each request goes through the whole Flask app (Flask's test client, no network, no server), so
the figures are the app's own cost, database driver included: webhook events (a new
subscription, a state change, the same state in a newer event, a redelivery), the two reads and
a usage consume. Events are synthetic but shaped like Stripe's; none of them needs a Stripe
call, so Stripe is not running.

    .venv/bin/python bench/hot_paths.py [--users 200] [--database-url URL]
    .venv/bin/python bench/hot_paths.py --compare OTHER_CHECKOUT [--rounds 3]

`--compare` runs this script alternately against this checkout and OTHER_CHECKOUT (e.g. a
worktree of main), A/B/A/B..., and prints the medians side by side with their ratio. SQLite
in a temporary directory by default; `--database-url postgresql://...` drops and re-creates the
tables of that database: use a scratch one.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SECRET = "whsec_hot_paths"
JWT_SECRET = "hot-paths-jwt-secret-0123456789-abcdef"
T0 = 1_930_000_000
PRICE = "price_hot_monthly"


def sign(payload: str) -> str:
    timestamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def subscription(user: str, *, cancel: bool, period: int) -> dict[str, Any]:
    start = T0 + period * 30 * 86_400
    return {
        "id": f"sub_{user}",
        "object": "subscription",
        "customer": f"cus_{user}",
        "status": "active",
        "created": T0,
        "metadata": {"userId": user},
        "cancel_at_period_end": cancel,
        "items": {
            "data": [
                {
                    "current_period_start": start,
                    "current_period_end": start + 30 * 86_400,
                    "price": {"id": PRICE, "recurring": {"interval": "month"}},
                }
            ]
        },
    }


def event(event_id: str, kind: str, created: int, obj: dict[str, Any]) -> str:
    body = {"id": event_id, "object": "event", "type": kind, "created": created}
    return json.dumps({**body, "data": {"object": obj}})


def measure(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    sys.path.insert(0, os.getcwd())
    from flask_migrate import upgrade
    from sqlalchemy import event as sa_event
    from sqlalchemy import text

    from app import create_app
    from app.auth import issue_dev_token
    from app.extensions import db

    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/hot.db"
    app = create_app(
        {
            "APP_ENV": "testing",
            "DATABASE_URL": url,
            "STRIPE_SECRET_KEY": "sk_test_hot_paths",
            "STRIPE_API_BASE": "http://127.0.0.1:9",  # never called
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "STRIPE_PRICE_ID_MONTHLY": PRICE,
            "AUTH_JWT_SECRET": JWT_SECRET,
            "LOG_LEVEL": "ERROR",
        }
    )
    with app.app_context():
        db.drop_all()
        db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()
        upgrade()
        engine = db.engine
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    sa_event.listen(engine, "before_cursor_execute", count)
    client = app.test_client()
    users = [f"hot{n}" for n in range(args.users)]
    tokens = {u: issue_dev_token({"AUTH_JWT_SECRET": JWT_SECRET}, u) for u in users}
    results: dict[str, dict[str, float]] = {}

    def run(name: str, requests: list[Callable[[], Any]], expect: tuple[int, ...]) -> None:
        cpu: list[float] = []
        wall: list[float] = []
        before = statements[0]
        for request in requests:
            started, clock = time.process_time(), time.perf_counter()
            reply = request()
            cpu.append((time.process_time() - started) * 1000)
            wall.append((time.perf_counter() - clock) * 1000)
            assert reply.status_code in expect, (name, reply.status_code, reply.get_data()[:300])
        results[name] = {
            "cpu_ms": statistics.median(cpu),
            "wall_ms": statistics.median(wall),
            "statements": (statements[0] - before) / len(requests),
        }

    def post(payload: str) -> Callable[[], Any]:
        headers = {"Stripe-Signature": sign(payload), "Content-Type": "application/json"}
        return lambda: client.post("/api/webhooks/stripe", data=payload, headers=headers)

    def get(path: str, user: str) -> Callable[[], Any]:
        return lambda: client.get(path, headers={"Authorization": f"Bearer {tokens[user]}"})

    def consume(user: str, n: int) -> Callable[[], Any]:
        body = {"count": 1, "idempotencyKey": f"k-{user}-{n}"}
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        return lambda: client.post("/api/usage/generations", json=body, headers=headers)

    # Users known first (as after their first sign-in), so webhooks find them.
    run("first sign-in (GET /api/me)", [get("/api/me", u) for u in users], (200,))
    created = [
        post(
            event(
                f"evt_c_{u}",
                "customer.subscription.created",
                T0,
                subscription(u, cancel=False, period=0),
            )
        )
        for u in users
    ]
    run("webhook: new subscription", created, (200,))
    changed = [
        post(
            event(
                f"evt_u_{u}",
                "customer.subscription.updated",
                T0 + 60,
                subscription(u, cancel=True, period=0),
            )
        )
        for u in users
    ]
    run("webhook: state change", changed, (200,))
    same = [
        event(
            f"evt_s_{u}",
            "customer.subscription.updated",
            T0 + 120,
            subscription(u, cancel=True, period=0),
        )
        for u in users
    ]
    run("webhook: same state, newer", [post(p) for p in same], (200,))
    run("webhook: redelivery", [post(p) for p in same], (200,))
    run("GET /api/subscription/<me>", [get(f"/api/subscription/{u}", u) for u in users], (200,))
    run("GET /api/me", [get("/api/me", u) for u in users], (200,))
    run("POST /api/usage/generations", [consume(u, 1) for u in users], (200, 402))
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return results


def compare(args: argparse.Namespace) -> None:
    here = Path(__file__).resolve().parents[1]
    other = Path(args.compare).resolve()
    script = Path(__file__).resolve()
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"this": [], "other": []}
    for _ in range(args.rounds):
        for label, tree in (("this", here), ("other", other)):
            command = [sys.executable, str(script), "--json", "--users", str(args.users)]
            if args.database_url:
                command += ["--database-url", args.database_url]
            out = subprocess.run(
                command, cwd=tree, check=True, capture_output=True, text=True
            ).stdout
            runs[label].append(json.loads(out.strip().splitlines()[-1]))
    names = list(runs["this"][0])
    print(
        f"medians of {args.rounds} alternating runs, {args.users} users; this={here} other={other}"
    )
    header = (
        "cpu other",
        "cpu this",
        "ratio",
        "wall other",
        "wall this",
        "ratio",
        "SQL other",
        "SQL this",
    )
    print(f"{'path':32} " + " ".join(f"{h:>12}" for h in header))
    for name in names:

        def med(label: str, key: str, name: str = name) -> float:
            return statistics.median(r[name][key] for r in runs[label] if name in r)

        a, b = med("other", "cpu_ms"), med("this", "cpu_ms")
        c, d = med("other", "wall_ms"), med("this", "wall_ms")
        figures = (a, b, b / a, c, d, d / c, med("other", "statements"), med("this", "statements"))
        print(f"{name:32} " + " ".join(f"{f:10.2f}" for f in figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument("--compare", default="")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.compare:
        compare(args)
        return
    results = measure(args)
    if args.json:
        print(json.dumps(results))
        return
    for name, figures in results.items():
        print(
            f"{name:32} {figures['cpu_ms']:7.2f} ms CPU {figures['wall_ms']:7.2f} ms wall "
            f"{figures['statements']:5.1f} SQL"
        )


if __name__ == "__main__":
    main()
