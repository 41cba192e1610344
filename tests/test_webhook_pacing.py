"""The applier thread defers to busy ingest (WEBHOOK_APPLY_BUSY_PAUSE_SECONDS) but never
starves: while deliveries keep coming, recorded events are still applied, and every one of
them exactly once."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import requests
from app_instance import serve_instance
from flask import Flask
from sqlalchemy import func, select
from support import sign_payload, wait_until

from app.extensions import db
from app.models import Subscription, WebhookEvent

SECRET = "whsec_pacing_test"
RUN = f"pace{int(time.time() * 1000) % 10**9}"
NOW = int(time.time())


def subscription_event(n: int, owner: int) -> dict[str, Any]:
    now = NOW
    subscription = {
        "id": f"sub_{RUN}_{owner}",
        "object": "subscription",
        "customer": f"cus_{RUN}_{owner}",
        "status": "active",
        "cancel_at_period_end": False,
        "metadata": {"userId": f"user_{RUN}_{owner}"},
        "current_period_start": now,
        "current_period_end": now + 30 * 86400,
        "items": {"object": "list", "data": []},
    }
    return {
        "id": f"evt_{RUN}_{n}",
        "object": "event",
        "type": "customer.subscription.updated",
        "created": now + n,
        "data": {"object": subscription},
    }


def counts(app: Flask) -> tuple[int, int]:
    """This run's events: recorded, applied."""
    with app.app_context():
        mine = WebhookEvent.id.like(f"evt_{RUN}_%")
        recorded = db.session.scalar(select(func.count()).where(mine)) or 0
        applied = db.session.scalar(select(func.count()).where(mine, WebhookEvent.processed)) or 0
        db.session.commit()
    return int(recorded), int(applied)


def test_events_are_applied_while_deliveries_keep_coming(app: Flask) -> None:
    shared = app.extensions["webhook_applier"]
    shared.stop()  # only the instance's applier (the one that paces) applies these
    try:
        with serve_instance(
            app,
            STRIPE_WEBHOOK_SECRET=SECRET,
            WEBHOOK_APPLY_BATCH=5,  # several batches, so the pause between them is taken
            WEBHOOK_APPLY_BUSY_PAUSE_SECONDS=0.2,
            WEBHOOK_APPLY_POLL_SECONDS=0.05,
        ) as instance:
            stop = threading.Event()
            sent: list[int] = []
            applied_during_load: list[int] = []

            def deliver(worker: int) -> None:
                n = worker
                with requests.Session() as http:
                    while not stop.is_set():
                        payload = json.dumps(subscription_event(n, n % 7))
                        headers = {"Stripe-Signature": sign_payload(payload, SECRET)}
                        reply = http.post(
                            instance.webhook_url, data=payload, headers=headers, timeout=10
                        )
                        assert reply.status_code == 200, reply.text
                        sent.append(n)
                        n += 3

            senders = [threading.Thread(target=deliver, args=(w,)) for w in range(3)]
            for sender in senders:
                sender.start()
            time.sleep(2.5)
            applied_during_load.append(counts(app)[1])
            stop.set()
            for sender in senders:
                sender.join(10)

            assert applied_during_load[0] > 0, "the applier kept applying while ingest was busy"
            wait_until(lambda: counts(app) == (len(sent), len(sent)))
            with app.app_context():
                rows = db.session.execute(
                    select(WebhookEvent.attempts).where(WebhookEvent.id.like(f"evt_{RUN}_%"))
                ).all()
                assert {attempts for (attempts,) in rows} == {1}, "each applied once"
                # The newest event of each subscription is what its row shows.
                for owner in range(7):
                    row = db.session.get(Subscription, f"sub_{RUN}_{owner}")
                    assert row is not None and row.user_id == f"user_{RUN}_{owner}"
                    newest = max(n for n in sent if n % 7 == owner)
                    assert row.last_event_created == subscription_event(newest, owner)["created"]
                db.session.commit()
    finally:
        shared.start()
