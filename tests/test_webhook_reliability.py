"""Webhooks under the conditions Stripe creates: duplicated and shuffled deliveries, the same
event at two instances at once, the database or Stripe gone in the middle of a delivery or of
an apply. A 200 means the event is durably ours; the tests then wait for the appliers to
converge, and check every event was applied exactly once."""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from app_instance import proxied_database_url, serve_instance
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.engine import make_url
from stripe_history import History, clear_tables, drop_endpoints, stored_state, stripe_state
from support import (
    Billing,
    apply_recorded_events,
    auth_headers,
    is_postgres,
    portal_action,
    sign_payload,
    subscribe,
    wait_until,
)
from tcp_proxy import TcpProxy

from app.billing.accounts.users import get_or_create_user
from app.billing.webhooks.handlers import HANDLED_EVENT_TYPES
from app.extensions import db
from app.models import Subscription, WebhookEvent


def webhook_rows(app: Flask) -> dict[str, WebhookEvent]:
    with app.app_context():
        rows = {row.id: row for row in db.session.execute(select(WebhookEvent)).scalars()}
        db.session.commit()  # ends the transaction and keeps the rows readable
        return rows


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

        apply_recorded_events(app)  # with the two instances' appliers, at the same time

    for event_id, pair in statuses.items():
        assert pair == ["duplicate", "recorded"], (event_id, pair)  # one of them recorded it
    rows = webhook_rows(app)
    assert set(rows) == set(statuses)
    unsettled = {
        event_id: (row.processed, row.attempts, row.error)
        for event_id, row in rows.items()
        if not (row.processed and row.attempts == 1 and row.error is None)
    }
    assert not unsettled, unsettled
    assert stored_state(app, history.subscription_id) == stripe_state(
        billing, history.subscription_id, history.user_id
    )


# -- the database goes away in the middle of a delivery -----------------------------------------


@pytest.mark.skipif(
    not is_postgres(),
    reason="cutting a database connection needs a networked database (PostgreSQL); "
    "the Stripe-unreachable test below covers a failing apply on SQLite",
)
def test_database_cut_mid_delivery_and_mid_apply_loses_nothing(
    app: Flask, billing: Billing
) -> None:
    """The connection dies inside the transaction that records an event (the delivery answers
    5xx and Stripe delivers it again), then inside the one that applies a subscription (the
    applier rolls back and tries again): every event ends applied, once."""
    history = History.fresh(billing, "db-cut")
    billing.sandbox.configure(retry_time_scale=0.001)
    target = make_url(app.config["DATABASE_URL"])
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    url = proxied_database_url(app.config["DATABASE_URL"], proxy.port)
    app.extensions["webhook_applier"].stop()  # only the instance behind the proxy applies
    try:
        with serve_instance(app, DATABASE_URL=url, WEBHOOK_APPLY_POLL_SECONDS=0.05) as instance:
            instance.app.config["STRIPE_WEBHOOK_SECRET"] = register_endpoint(
                billing, instance.webhook_url
            )
            proxy.cut_when(b"INSERT INTO webhook_events")
            history.start()
            wait_until(lambda: proxy.cuts == 1)
            # 503 database_unavailable (any 5xx makes Stripe deliver again)
            wait_until(lambda: any(d["status"] >= 500 for d in billing.sandbox.deliveries))
            proxy.restore()
            proxy.cut_when(b"INSERT INTO subscriptions")
            wait_until(lambda: proxy.cuts == 2)
            with app.app_context():
                assert db.session.get(Subscription, history.subscription_id) is None
                db.session.rollback()
            proxy.restore()

            assert billing.sandbox.wait_for_webhooks(timeout=60)
            last = {d["event_id"]: d["status"] for d in billing.sandbox.deliveries}
            assert set(last.values()) == {200}, "every event is finally accepted"
            wait_until(lambda: all(row.processed for row in webhook_rows(app).values()))
            rows = webhook_rows(app)
            assert set(last) <= set(rows)
            assert all(row.attempts == 1 for row in rows.values()), "applied once each"
            assert stored_state(app, history.subscription_id) == stripe_state(
                billing, history.subscription_id, history.user_id
            )
    finally:
        proxy.stop()
        drop_endpoints(billing)


# -- the apply itself fails: Stripe unreachable during a re-read --------------------------------


def test_a_failing_apply_is_retried_with_back_off_until_it_succeeds(
    app: Flask, billing: Billing
) -> None:
    """Two changes in the same second reach an instance that can't reach Stripe: both are
    acknowledged (recorded), but the second needs a re-read, which fails; its transaction
    rolls back, the failure is recorded, and the applier tries again with back-off (Stripe is
    never asked to deliver again) until Stripe is reachable."""
    history = History.fresh(billing, "stripe-down")
    sandbox = urlsplit(billing.sandbox.url)
    proxy = TcpProxy(sandbox.hostname or "127.0.0.1", sandbox.port or 80)
    app.extensions["webhook_applier"].stop()  # only the instance that can't reach Stripe applies
    try:
        with serve_instance(
            app,
            STRIPE_API_BASE=f"http://127.0.0.1:{proxy.port}",
            WEBHOOK_APPLY_POLL_SECONDS=0.05,
            WEBHOOK_APPLY_BACKOFF_SECONDS=0.1,
            WEBHOOK_APPLY_MAX_BACKOFF_SECONDS=0.4,
            WEBHOOK_APPLY_MAX_ATTEMPTS=1000,  # Stripe's outage outlasts many short back-offs
        ) as instance:
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

            def failed_twice() -> bool:
                row = webhook_rows(app).get(resume["id"])
                return row is not None and row.attempts >= 2

            wait_until(failed_twice)
            row = webhook_rows(app)[resume["id"]]
            assert not row.processed and not row.is_parked
            assert "ProviderUnavailable" in (row.error or "")
            statuses = [
                d["status"] for d in billing.sandbox.deliveries if d["event_id"] == resume["id"]
            ]
            assert statuses == [200], "acknowledged once: the retries are ours, not Stripe's"
            # Nothing of the failed apply is left: the row shows the cancel, not the resume.
            assert stored_state(app, history.subscription_id)["cancel_at_period_end"] is True

            proxy.restore()
            wait_until(lambda: webhook_rows(app)[resume["id"]].processed)
            row = webhook_rows(app)[resume["id"]]
            assert row.error is None and row.attempts >= 3
            assert stored_state(app, history.subscription_id) == stripe_state(
                billing, history.subscription_id, history.user_id
            )
    finally:
        proxy.stop()
        drop_endpoints(billing)
