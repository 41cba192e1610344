"""Applying subscriptions' first events for users we never saw: the applier's costliest work.

Records N `customer.subscription.updated` events, each naming a new user, a new customer and a
new subscription (as the peer benchmark's fresh users do), then drains them as the applier
thread does and prints the wall and CPU milliseconds per applied event. Usage:

    .venv/bin/python bench/first_apply.py [--events 400] [--rounds 3] [--database-url URL]
        [--root CHECKOUT] [--users U]

`--users U`: the peer benchmark's mix instead (../shared/peers/webhook_load.py): the N events
are for U fresh users, event k for user k % U with `created` increasing, so consecutive events
are for different users and each user gets about N / U of them (the first one a first apply,
the rest newer events with the same state).

`--root` imports the app from another checkout (e.g. main) so two versions can be compared
with the same script, run alternately (farm-bench --vs). SQLite in a temporary directory by
default; a PostgreSQL URL's tables are dropped and re-created: point it at a scratch database.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--users", type=int, default=0, help="the peer bench's mix (see above)")
    args = parser.parse_args()
    sys.path.insert(0, args.root)

    from flask_migrate import upgrade
    from sqlalchemy import MetaData, text

    from app import create_app
    from app.billing.webhooks.applier import Settings, drain
    from app.billing.webhooks.store import Recorded, record_events
    from app.extensions import db

    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    app = create_app(
        {
            "APP_ENV": "testing",
            "TESTING": True,
            "DATABASE_URL": url,
            "STRIPE_SECRET_KEY": "sk_test_bench_first_apply",
            "STRIPE_API_BASE": "http://127.0.0.1:9",  # first events call no Stripe API
            "STRIPE_MAX_NETWORK_RETRIES": 0,
            "AUTH_JWT_SECRET": "bench-first-apply-secret-0123456789abcdef",
            "WEBHOOK_APPLIER": "off",
            "LOG_LEVEL": "ERROR",
            "RATE_LIMIT_ENABLED": False,
        }
    )
    with app.app_context():
        if url.startswith("postgresql"):
            meta = MetaData()
            meta.reflect(db.engine)
            meta.drop_all(db.engine)
            with db.engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade()
        settings = Settings.from_config(app.config)
        gateway = app.extensions["stripe_gateway"]
        per_event: list[float] = []
        cpu_per_event: list[float] = []
        for _ in range(args.rounds):
            run = uuid.uuid4().hex[:10]
            users = args.users or args.events
            batch = [_first_event(run, n, Recorded, users) for n in range(args.events)]
            for start in range(0, len(batch), 1000):  # as the inbox writes them: in batches
                record_events(batch[start : start + 1000])
            db.session.commit()
            wall, cpu = time.perf_counter(), time.process_time()
            applied = 0
            while applied < args.events:
                taken = drain(gateway, settings)
                if taken == 0:
                    raise SystemExit(f"only {applied} of {args.events} applied")
                applied += taken
            per_event.append((time.perf_counter() - wall) * 1000 / applied)
            cpu_per_event.append((time.process_time() - cpu) * 1000 / applied)
            settled = db.session.execute(
                text(
                    "SELECT count(*) FROM users WHERE id LIKE :run AND stripe_customer_id IS NOT"
                    " NULL AND subscription_status = 'active' AND subscription_tier <> 'free'"
                ),
                {"run": f"user_{run}_%"},
            ).scalar_one()
            db.session.rollback()
            if settled != users:  # every user linked and settled
                raise SystemExit(f"only {settled} of {users} users settled")
        print(
            f"first-apply root={args.root} db={url.split(':')[0]} events={args.events}"
            f" users={args.users or args.events}"
            f" wall_ms/event median={statistics.median(per_event):.3f}"
            f" cpu_ms/event median={statistics.median(cpu_per_event):.3f}"
            f" rounds={[round(x, 3) for x in per_event]}",
            flush=True,
        )


def _first_event(run: str, n: int, recorded: type[Any], users: int) -> Any:
    u = n % users
    sub_id, customer, user = f"sub_{run}_{u}", f"cus_{run}_{u}", f"user_{run}_{u}"
    created = 1_700_000_000 + n
    subscription = {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": "active",
        "cancel_at_period_end": False,
        "metadata": {"userId": user},
        "created": 1_700_000_000 + u,
        "current_period_start": 1_700_000_000 + u,  # the same state in each of a user's events
        "current_period_end": 1_700_000_000 + u + 30 * 86_400,
        "items": {"object": "list", "data": []},
    }
    event = {
        "id": f"evt_{run}_{n}",  # one event per n, whichever user it is for
        "object": "event",
        "type": "customer.subscription.updated",
        "created": created,
        "data": {"object": subscription},
    }
    return recorded(
        id=event["id"],
        type=event["type"],
        data=json.dumps(event),  # the whole body, as the inbox keeps it
        raw_body=None,
        stripe_created=created,
        received_at=datetime.now(UTC),
    )


if __name__ == "__main__":
    main()
