"""Ownership is anchored to the stored customer -> user link (an event's metadata.userId can't
move a subscription), and the audit log records who did what to which Stripe object."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from support import Billing, auth_headers, post_webhook, subscribe

from app.extensions import db
from app.models import AuditEntry, Subscription, User


def audit_rows(app: Flask, **where: Any) -> list[AuditEntry]:
    with app.app_context():
        query = select(AuditEntry).order_by(AuditEntry.id)
        for name, value in where.items():
            query = query.where(getattr(AuditEntry, name) == value)
        return list(db.session.execute(query).scalars())


def signed_event(event_type: str, obj: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()) + 5,  # newer than anything applied: it would apply
        "data": {"object": obj},
    }


def test_metadata_user_id_cannot_move_a_subscription(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    subscribe(client, billing, "rightful")
    me = client.get("/api/me", headers=auth_headers("rightful")).get_json()
    sub_id = me["subscription"]["id"]
    stripe_sub = billing.gateway.retrieve_subscription(sub_id)
    stripe_sub["metadata"] = {"userId": "usurper"}
    stripe_sub["cancel_at_period_end"] = True  # a real change, so the event is applied
    reply = post_webhook(
        client,
        signed_event("customer.subscription.updated", stripe_sub, "evt_usurp"),
        billing.webhook_secret,
    )
    assert reply.status_code == 200
    with app.app_context():
        row = db.session.get(Subscription, sub_id)
        assert row is not None and row.user_id == "rightful" and row.cancel_at_period_end
        usurper = db.session.get(User, "usurper")
        assert usurper is None or (
            usurper.stripe_subscription_id is None and usurper.subscription_tier == "free"
        )
    assert (
        client.get("/api/me", headers=auth_headers("rightful")).get_json()["user"]["tier"] == "pro"
    )
    usurper_view = client.get("/api/me", headers=auth_headers("usurper")).get_json()
    assert usurper_view["subscription"] is None and usurper_view["user"]["tier"] == "free"
    [flag] = audit_rows(app, action="webhook.ownership_mismatch")
    assert flag.user_id == "rightful" and flag.stripe_object == sub_id
    assert flag.detail == "metadata.userId=usurper"


def test_a_checkout_event_naming_another_user_fulfils_the_customers_owner(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    subscribe(client, billing, "payer")
    customer = client.get("/api/me", headers=auth_headers("payer")).get_json()["user"][
        "stripeCustomerId"
    ]
    session = {
        "id": "cs_test_forged",
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "client_reference_id": "freeloader",
        "customer": customer,
        "subscription": "sub_forged",
        "metadata": {"userId": "freeloader"},
    }
    reply = post_webhook(
        client,
        signed_event("checkout.session.completed", session, "evt_forged_checkout"),
        billing.webhook_secret,
    )
    assert reply.status_code == 200
    with app.app_context():
        assert db.session.get(User, "freeloader") is None
        row = db.session.get(Subscription, "sub_forged")
        assert row is not None and row.user_id == "payer"
    assert audit_rows(app, action="webhook.ownership_mismatch", stripe_object="cs_test_forged")


def test_payment_actions_are_audited_without_secrets(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    headers = {**auth_headers("audited"), "X-Request-ID": "req-audit-1"}
    created = client.post("/api/create-checkout-session", json={"plan": "monthly"}, headers=headers)
    session_id = created.get_json()["session"]["id"]
    subscribe(client, billing, "audited")
    again = client.post("/api/create-checkout-session", json={"plan": "monthly"}, headers=headers)
    assert again.status_code == 409
    sub_id = client.get("/api/me", headers=headers).get_json()["subscription"]["id"]
    assert client.post("/api/cancel-subscription", json={}, headers=headers).status_code == 200
    assert client.post("/api/resume-subscription", json={}, headers=headers).status_code == 200
    assert client.post("/api/create-portal-session", json={}, headers=headers).status_code == 200
    bad = client.post("/api/webhooks/stripe", data="{}", headers={"Stripe-Signature": "t=1,v1=00"})
    assert bad.status_code == 400
    billing.wait_for_webhooks()

    mine = audit_rows(app, user_id="audited")
    actions = [(row.action, row.outcome) for row in mine]
    for expected in [
        ("checkout.create", "ok"),
        ("checkout.duplicate_subscription", "subscription_exists"),
        ("subscription.cancel", "ok"),
        ("subscription.resume", "ok"),
        ("portal.open", "ok"),
    ]:
        assert expected in actions, (expected, actions)
    first = next(row for row in mine if row.action == "checkout.create")
    assert first.stripe_object == session_id and first.request_id == "req-audit-1"
    assert first.ip == "127.0.0.1"
    cancel = next(row for row in mine if row.action == "subscription.cancel")
    assert cancel.stripe_object == sub_id
    assert audit_rows(app, action="webhook.rejected")
    applied = audit_rows(app, action="webhook.applied")
    assert applied and all(row.stripe_object.startswith("evt_") for row in applied)
    # Never a token, a secret or a card number.
    token = headers["Authorization"].split()[1]
    for row in audit_rows(app):
        # Not the entry's own number: id 4242 is no card (it happened); nor is a random request
        # id's "...bd424261..." (that happened too): the test card's number is.
        text = " ".join(
            str(getattr(row, c.name)) for c in AuditEntry.__table__.columns if c.name != "id"
        )
        assert token not in text and billing.webhook_secret not in text
        assert "sk_test" not in text and "4242424242424242" not in text

    runner = app.test_cli_runner()
    since = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    listed = runner.invoke(args=["billing", "audit", "--user", "audited", "--since", since])
    assert listed.exit_code == 0
    assert "subscription.cancel" in listed.output and "portal.open" in listed.output
    assert "user=audited" in listed.output and "webhook.rejected" not in listed.output
    future = runner.invoke(args=["billing", "audit", "--since", "2999-01-01"])
    assert future.output.strip() == "no entries"


def test_refused_usage_is_audited(app: Flask, client: FlaskClient, billing: Billing) -> None:
    headers = auth_headers("quota-audit")
    for n in range(11):
        client.post("/api/usage/generations", json={"idempotencyKey": f"k{n}"}, headers=headers)
    [refused] = audit_rows(app, action="usage.refused")
    assert refused.user_id == "quota-audit" and refused.outcome == "quota_exceeded"


def test_an_expired_checkout_session_is_audited_for_its_user(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    created = client.post(
        "/api/create-checkout-session", json={"plan": "monthly"}, headers=auth_headers("lapsed")
    )
    session_id = created.get_json()["session"]["id"]
    billing.gateway.client.v1.checkout.sessions.expire(session_id)
    billing.wait_for_webhooks()
    [entry] = audit_rows(app, action="checkout.expired")
    assert entry.user_id == "lapsed" and entry.stripe_object == session_id
    applied = audit_rows(app, action="webhook.applied", detail="checkout.session.expired")
    assert len(applied) == 1
