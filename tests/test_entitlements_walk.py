"""The whole life of a user's quota, with time moved by the sandbox's test clock:
free -> limit -> 402 -> checkout -> pro -> unlimited -> renewal resets -> cancel now -> free."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from support import Billing, auth_headers, subscribe

from app.extensions import db
from app.models import User

USER = "walker"
HOUR = 3600


def entitlements(client: FlaskClient) -> dict[str, Any]:
    reply = client.get("/api/me/entitlements", headers=auth_headers(USER))
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


def consume(client: FlaskClient, count: int, key: str) -> Any:
    return client.post(
        "/api/usage/generations",
        json={"count": count, "idempotencyKey": key},
        headers=auth_headers(USER),
    )


def put_customer_on_a_test_clock(app: Flask, billing: Billing) -> str:
    """The user's Stripe customer lives on a test clock; checkout reuses the stored customer."""
    stripe = billing.gateway.client
    clock = stripe.v1.test_helpers.test_clocks.create({"frozen_time": int(time.time())})
    customer = stripe.v1.customers.create(
        {"test_clock": clock.id, "email": f"{USER}@example.com", "metadata": {"userId": USER}}
    )
    with app.app_context():
        db.session.execute(
            update(User).where(User.id == USER).values(stripe_customer_id=customer.id)
        )
        db.session.commit()
    return clock.id


@pytest.mark.parametrize("deliveries", ["in order", "duplicated and shuffled"])
def test_free_limit_checkout_pro_renewal_cancel_free(
    app: Flask, client: FlaskClient, billing: Billing, deliveries: str
) -> None:
    if deliveries != "in order":
        billing.sandbox.configure(duplicate_deliveries=True, shuffle_deliveries=True)
    # Free: 10 a month, then 402 with the way to upgrade.
    free = entitlements(client)
    assert (free["tier"], free["generationsLimit"], free["generationsRemaining"]) == (
        "free",
        10,
        10,
    )
    clock_id = put_customer_on_a_test_clock(app, billing)
    assert consume(client, 4, "free-1").status_code == 200
    assert consume(client, 6, "free-2").get_json()["generationsRemaining"] == 0
    spent = consume(client, 1, "free-3")
    assert spent.status_code == 402
    assert spent.get_json()["error"]["upgrade"] == "/api/create-checkout-session"

    # Checkout and pay: pro at once, unlimited, the usage period is the subscription's.
    subscribe(client, billing, USER)
    pro = entitlements(client)
    assert (pro["tier"], pro["status"], pro["generationsLimit"]) == ("pro", "active", None)
    assert pro["generationsUsed"] == 10 and pro["generationsRemaining"] is None
    stripe_sub = billing.gateway.client.v1.subscriptions.list({"customer": _customer(app)}).data[0]
    item = stripe_sub["items"].data[0]
    assert stripe_sub.test_clock == clock_id
    assert pro["periodStart"] == item.current_period_start * 1000
    assert pro["periodResetsAt"] == item.current_period_end * 1000
    for i in range(3):
        assert consume(client, 100, f"pro-{i}").status_code == 200
    assert entitlements(client)["generationsUsed"] == 310

    # A month passes on the clock: Stripe renews and charges; its paid invoice resets usage.
    billing.gateway.client.v1.test_helpers.test_clocks.advance(
        clock_id, {"frozen_time": item.current_period_end + HOUR}
    )
    billing.wait_for_webhooks()
    renewed = entitlements(client)
    assert renewed["tier"] == "pro" and renewed["generationsUsed"] == 0
    assert renewed["periodStart"] == item.current_period_end * 1000
    assert renewed["periodResetsAt"] > renewed["periodStart"] + 27 * 86_400_000
    usage = client.get("/api/usage", headers=auth_headers(USER)).get_json()
    assert [(e["kind"], e["reason"], e["count"]) for e in usage["entries"]] == [
        ("reset", "renewal", 310)
    ]
    assert consume(client, 12, "after-renewal").get_json()["generationsUsed"] == 12

    # Cancel now: free at once, and the 12 already used count against the free 10.
    cancelled = client.post(
        "/api/cancel-subscription", json={"immediately": True}, headers=auth_headers(USER)
    )
    assert cancelled.status_code == 200
    billing.wait_for_webhooks()
    back = entitlements(client)
    assert (back["tier"], back["status"], back["generationsLimit"]) == ("free", "canceled", 10)
    assert (back["generationsUsed"], back["generationsRemaining"]) == (12, 0)
    assert back["features"] == free["features"]
    assert consume(client, 1, "free-again").status_code == 402


def _customer(app: Flask) -> str:
    with app.app_context():
        customer = db.session.get(User, USER).stripe_customer_id
        assert customer is not None
        return customer
