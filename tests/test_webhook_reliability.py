"""Webhooks under the conditions Stripe creates: duplicated and shuffled deliveries, the same
event at two instances at once, the database or Stripe gone in the middle of a delivery."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from app_instance import proxied_database_url, serve_instance
from conftest import Billing, auth_headers, is_postgres
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.engine import make_url
from stripe_history import History, clear_tables, drop_endpoints, stored_state, stripe_state
from support import portal_action, sign_payload, subscribe
from tcp_proxy import TcpProxy

from app.billing.accounts.users import get_or_create_user
from app.billing.webhooks.receive import HANDLED_EVENT_TYPES
from app.extensions import db
from app.models import Subscription, WebhookEvent


def webhook_rows(app: Flask) -> dict[str, WebhookEvent]:
    with app.app_context():
        rows = {row.id: row for row in db.session.execute(select(WebhookEvent)).scalars()}
        db.session.commit()  # ends the transaction and keeps the rows readable
        return rows


def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def register_endpoint(billing: Billing, url: str) -> str:
    endpoint = billing.gateway.create_webhook_endpoint(url=url, enabled_events=HANDLED_EVENT_TYPES)
    return str(endpoint["secret"])


# -- the sandbox's own duplicate + shuffle switches, through the real API ----------------------


def test_duplicated_and_shuffled_deliveries_of_a_whole_lifecycle(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    billing.sandbox.configure(duplicate_deliveries=True, shuffle_deliveries=True)
    user = "dup-shuffle"
    headers = auth_headers(user)
    stripe = billing.gateway.client
    clock = stripe.v1.test_helpers.test_clocks.create({"frozen_time": 1_930_000_000})
    customer = stripe.v1.customers.create(
        {"email": f"{user}@example.com", "metadata": {"userId": user}, "test_clock": clock.id}
    )
    with app.app_context():
        get_or_create_user(user).stripe_customer_id = customer.id
        db.session.commit()

    def advance(seconds: int) -> None:
        now = stripe.v1.test_helpers.test_clocks.retrieve(clock.id).frozen_time
        stripe.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": now + seconds})

    subscribe(client, billing, user)
    sub_id = client.get("/api/me", headers=headers).get_json()["subscription"]["id"]
    advance(60)
    assert client.post("/api/cancel-subscription", json={}, headers=headers).status_code == 200
    advance(60)
    assert client.post("/api/resume-subscription", json={}, headers=headers).status_code == 200
    advance(60)
    portal = client.post("/api/create-portal-session", json={}, headers=headers).get_json()
    switched = portal_action(portal["url"], "switch", price=billing.yearly)
    assert switched.status_code in (302, 303), switched.text[:300]
    period_end = billing.gateway.retrieve_subscription(sub_id)["items"]["data"][0][
        "current_period_end"
    ]
    stripe.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": period_end + 3600})
    advance(60)
    now = client.post("/api/cancel-subscription", json={"immediately": True}, headers=headers)
    assert now.status_code == 200
    billing.wait_for_webhooks()

    assert stored_state(app, sub_id) == stripe_state(billing, sub_id, user)
    deliveries = billing.sandbox.deliveries
    assert all(d["status"] == 200 for d in deliveries)
    copies = Counter(d["event_id"] for d in deliveries)
    assert set(copies.values()) == {2}, "every event is delivered twice"
    rows = webhook_rows(app)
    assert set(copies) <= set(rows)
    assert all(rows[event_id].processed and rows[event_id].attempts == 1 for event_id in copies)


# -- two instances, one event, the same moment --------------------------------------------------


def post_signed(url: str, payload: str, secret: str) -> requests.Response:
    headers = {
        "Stripe-Signature": sign_payload(payload, secret),
        "Content-Type": "application/json",
    }
    return requests.post(url, data=payload, headers=headers, timeout=30)


def test_the_same_event_at_two_instances_at_once_has_one_effect(
    app: Flask, billing: Billing
) -> None:
    history = History.fresh(billing, "twins")
    history.start()
    for step in (history.cancel_at_period_end, history.resume, history.renew):
        history.advance(60)
        step()
    events = history.events()
    # Many rounds: each real event, then copies under new ids (distinct events, same content).
    rounds = events + [
        {**event, "id": f"{event['id']}_copy{n}"}
        for n in range(3)
        for event in events
        if event["type"].startswith(("customer.subscription.", "invoice.paid"))
    ]
    clear_tables(app)
    secret = "whsec_twins_test_secret"
    with (
        serve_instance(app, STRIPE_WEBHOOK_SECRET=secret) as first,
        serve_instance(app, STRIPE_WEBHOOK_SECRET=secret) as second,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        statuses: dict[str, list[str]] = {}
        for event in rounds:
            payload = json.dumps(event)
            barrier = threading.Barrier(2)

            def fire(url: str, payload: str = payload, barrier: threading.Barrier = barrier) -> Any:
                barrier.wait()
                return post_signed(url, payload, secret)

            replies = list(pool.map(fire, [first.webhook_url, second.webhook_url]))
            assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]
            statuses[event["id"]] = sorted(r.json()["status"] for r in replies)

    for event_id, pair in statuses.items():
        assert pair in (["applied", "duplicate"], ["duplicate", "ignored"]), (event_id, pair)
    rows = webhook_rows(app)
    assert set(rows) == set(statuses)
    assert all(row.processed and row.attempts == 1 and row.error is None for row in rows.values())
    assert stored_state(app, history.subscription_id) == stripe_state(
        billing, history.subscription_id, history.user_id
    )


# -- the database goes away in the middle of a delivery -----------------------------------------


@pytest.mark.skipif(
    not is_postgres(),
    reason="cutting a database connection needs a networked database (PostgreSQL); "
    "the Stripe-unreachable test below covers a failing apply on SQLite",
)
def test_database_cut_mid_delivery_answers_5xx_and_the_retry_repairs(
    app: Flask, billing: Billing
) -> None:
    history = History.fresh(billing, "db-cut")
    billing.sandbox.configure(retry_time_scale=0.001)
    target = make_url(app.config["DATABASE_URL"])
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    url = proxied_database_url(app.config["DATABASE_URL"], proxy.port)
    try:
        with serve_instance(app, DATABASE_URL=url) as instance:
            instance.app.config["STRIPE_WEBHOOK_SECRET"] = register_endpoint(
                billing, instance.webhook_url
            )
            # The connection dies inside the transaction that first writes a subscription:
            # after its webhook_events insert, before its commit.
            proxy.cut_when(b"INSERT INTO subscriptions")
            history.start()
            wait_until(lambda: proxy.cuts == 1)
            # 503 database_unavailable (any 5xx makes Stripe deliver again)
            wait_until(lambda: sum(d["status"] >= 500 for d in billing.sandbox.deliveries) >= 2)

            failed = {d["event_id"] for d in billing.sandbox.deliveries if d["status"] != 200}
            rows = webhook_rows(app)
            assert not any(rows[event_id].processed for event_id in failed if event_id in rows)
            with app.app_context():
                assert db.session.get(Subscription, history.subscription_id) is None
                db.session.rollback()

            proxy.restore()
            assert billing.sandbox.wait_for_webhooks(timeout=60)
            last = {d["event_id"]: d["status"] for d in billing.sandbox.deliveries}
            assert set(last.values()) == {200}, "every event is finally accepted"
            rows = webhook_rows(app)
            assert all(rows[event_id].processed for event_id in last)
            assert stored_state(app, history.subscription_id) == stripe_state(
                billing, history.subscription_id, history.user_id
            )
    finally:
        proxy.stop()
        drop_endpoints(billing)


# -- the apply itself fails: Stripe unreachable during a re-read --------------------------------


def test_failing_apply_answers_5xx_records_the_failure_and_the_retry_repairs(
    app: Flask, billing: Billing
) -> None:
    """Two changes in the same second delivered to an instance that can't reach Stripe: the
    second needs a re-read, which fails; its transaction rolls back, the failure is recorded,
    and Stripe's retry succeeds once Stripe is reachable again."""
    history = History.fresh(billing, "stripe-down")
    billing.sandbox.configure(retry_time_scale=0.001)
    sandbox = urlsplit(billing.sandbox.url)
    proxy = TcpProxy(sandbox.hostname or "127.0.0.1", sandbox.port or 80)
    try:
        with serve_instance(app, STRIPE_API_BASE=f"http://127.0.0.1:{proxy.port}") as instance:
            instance.app.config["STRIPE_WEBHOOK_SECRET"] = register_endpoint(
                billing, instance.webhook_url
            )
            history.start()
            assert billing.sandbox.wait_for_webhooks(timeout=20)
            history.advance(60)
            proxy.cut()
            history.cancel_at_period_end()
            history.resume()  # same second as the cancel: ambiguous without a read
            resume = history.events()[-1]
            assert resume["type"] == "customer.subscription.updated"

            def failure_recorded() -> bool:
                row = webhook_rows(app).get(resume["id"])
                return row is not None and row.attempts >= 2

            wait_until(failure_recorded)
            row = webhook_rows(app)[resume["id"]]
            assert not row.processed and "ProviderUnavailable" in (row.error or "")
            statuses = [
                d["status"] for d in billing.sandbox.deliveries if d["event_id"] == resume["id"]
            ]
            assert statuses and all(status == 500 for status in statuses)
            # Nothing of the failed apply is left: the row shows the cancel, not the resume.
            assert stored_state(app, history.subscription_id)["cancel_at_period_end"] is True

            proxy.restore()
            assert billing.sandbox.wait_for_webhooks(timeout=60)
            row = webhook_rows(app)[resume["id"]]
            assert row.processed and row.error is None and row.attempts >= 3
            assert stored_state(app, history.subscription_id) == stripe_state(
                billing, history.subscription_id, history.user_id
            )
    finally:
        proxy.stop()
        drop_endpoints(billing)
