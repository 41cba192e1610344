"""`kill -9` of a gunicorn worker while it receives and applies webhook events under load: no
acknowledged event is lost and none is applied twice.

The production server (gunicorn.conf.py, two workers, each with its applier thread) takes a
stream of signed subscription events from several senders that behave like Stripe: a delivery
that gets no 2xx (the connection died with the worker) is sent again. Mid-stream one worker is
killed with SIGKILL, in whatever it was doing: recording a batch, applying one, idle. gunicorn
starts a new one. Then every event must be recorded and applied exactly once: processed, its
apply counted once (`attempts`), and one `webhook.applied` audit entry, which the applier writes
in the same transaction as the event's effects; and each subscription must hold its newest
event's state.

The same with WEBHOOK_APPLIER=process (production's default): the victim is then the one
applier process that gunicorn's master keeps, killed mid-batch; the master starts another.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from processes import base_env, gunicorn
from sqlalchemy import select
from support import Billing, sign_payload

from app.extensions import db
from app.models import AuditEntry, Subscription, WebhookEvent

pytestmark = pytest.mark.slow

SECRET = "whsec_crash_test"
EVENTS = 600
SUBSCRIPTIONS = 40
SENDERS = 8


def subscription_event(n: int, start: int) -> dict[str, Any]:
    """The n-th event: subscription n % SUBSCRIPTIONS, one second newer each time it recurs."""
    k = n % SUBSCRIPTIONS
    item = {
        "id": f"si_crash_{k}",
        "object": "subscription_item",
        "current_period_start": start,
        "current_period_end": start + 30 * 86_400 + n,  # the newest event's end is the largest
        "quantity": 1,
        "price": {"id": "price_crash", "object": "price", "recurring": {"interval": "month"}},
    }
    subscription = {
        "id": f"sub_crash_{k}",
        "object": "subscription",
        "customer": f"cus_crash_{k}",
        "status": "active",
        "cancel_at_period_end": False,
        "metadata": {"userId": f"crash-user-{k}"},
        "items": {"object": "list", "data": [item]},
    }
    return {
        "id": f"evt_crash_{n}",
        "object": "event",
        "type": "customer.subscription.updated",
        "created": start + n,
        "data": {"object": subscription},
    }


def deliver_until_acknowledged(url: str, event: dict[str, Any]) -> int:
    """As Stripe does: send again until a 2xx; how many sends it took."""
    payload = json.dumps(event)
    for attempt in range(1, 200):
        headers = {"Stripe-Signature": sign_payload(payload, SECRET)}
        try:
            reply = requests.post(url, data=payload, headers=headers, timeout=10)
            if reply.status_code == 200:
                return attempt
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{event['id']} was never acknowledged")


def worker_pids(master: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def applier_pids(master: int) -> list[int]:
    pids = []
    for pid in worker_pids(master):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"billing" in argv and b"apply" in argv:
            pids.append(pid)
    return pids


@pytest.mark.parametrize("victim", ["worker", "applier process"])
def test_kill_9_of_a_worker_under_load_loses_nothing_and_applies_nothing_twice(
    app: Flask, billing: Billing, tmp_path: Path, victim: str
) -> None:
    app.extensions["webhook_applier"].stop()  # only the gunicorn workers apply
    env = base_env(
        APP_ENV="testing",
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        WEB_CONCURRENCY="2",
        WEB_THREADS="4",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        DATABASE_URL=app.config["DATABASE_URL"],
        STRIPE_SECRET_KEY=app.config["STRIPE_SECRET_KEY"],
        STRIPE_API_BASE=billing.sandbox.url,
        STRIPE_WEBHOOK_SECRET=SECRET,
        STRIPE_PRICE_ID_MONTHLY=billing.monthly,
        STRIPE_PRICE_ID_YEARLY=billing.yearly,
        AUTH_JWT_SECRET=app.config["AUTH_JWT_SECRET"],
        RATE_LIMIT_ENABLED="false",
        WEBHOOK_APPLY_POLL_SECONDS="0.05",
        WEBHOOK_APPLY_BATCH="25",
        WEBHOOK_APPLIER="thread" if victim == "worker" else "process",
    )
    start = int(time.time())
    events = [subscription_event(n, start) for n in range(EVENTS)]
    with gunicorn(tmp_path, env) as server:
        url = f"{server.url}/api/webhooks/stripe"
        sent = Counter[str]()
        killed: list[int] = []

        lock = threading.Lock()

        def send(event: dict[str, Any]) -> None:
            tries = deliver_until_acknowledged(url, event)
            with lock:
                sent[event["id"]] = tries
                if len(sent) < EVENTS // 3 or killed:
                    return
                if victim == "worker":
                    pids = set(worker_pids(server.process.pid))
                    pid = sorted(pids - set(applier_pids(server.process.pid)))[0]
                else:
                    pid = applier_pids(server.process.pid)[0]
                killed.append(pid)
            os.kill(pid, signal.SIGKILL)

        with ThreadPoolExecutor(SENDERS) as pool:
            list(pool.map(send, events))
        assert killed, "a worker was killed mid-stream"
        assert len(sent) == EVENTS

        def converged() -> bool:
            with app.app_context():
                waiting = db.session.execute(
                    select(WebhookEvent.id).where(
                        WebhookEvent.id.like("evt_crash_%"), WebhookEvent.processed.is_(False)
                    )
                ).first()
                db.session.rollback()
                return waiting is None

        deadline = time.monotonic() + 60
        while not converged():
            assert time.monotonic() < deadline, "the events were not all applied"
            time.sleep(0.1)
        if victim != "worker":
            assert [p for p in applier_pids(server.process.pid) if p not in killed], (
                "the master started another applier process"
            )

    with app.app_context():
        rows = {
            row.id: (row.processed, row.attempts)
            for row in db.session.execute(
                select(WebhookEvent).where(WebhookEvent.id.like("evt_crash_%"))
            ).scalars()
        }
        applied = Counter(
            db.session.execute(
                select(AuditEntry.stripe_object).where(
                    AuditEntry.action == "webhook.applied",
                    AuditEntry.stripe_object.like("evt_crash_%"),
                )
            ).scalars()
        )
        stored = {
            row.id: row.current_period_end
            for row in db.session.execute(
                select(Subscription).where(Subscription.id.like("sub_crash_%"))
            ).scalars()
        }
        db.session.rollback()
    assert set(rows) == {event["id"] for event in events}, "no acknowledged event is lost"
    assert set(rows.values()) == {(True, 1)}, "each processed, its apply counted once"
    assert set(applied) == set(rows) and set(applied.values()) == {1}, "each applied once"
    newest = {
        event["data"]["object"]["id"]: event["data"]["object"]["items"]["data"][0]
        for event in events
    }
    expected = {sub: item["current_period_end"] * 1000 for sub, item in newest.items()}
    assert stored == expected, "every subscription holds its newest event's state"
