"""The webhook receiver: signatures, stale timestamps, replays, unknown types, failures."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from support import Billing, auth_headers, is_postgres, post_webhook, sign_payload, subscribe

from app.extensions import db
from app.models import Subscription, WebhookEvent


def stored_events(app: Flask) -> list[WebhookEvent]:
    with app.app_context():
        return list(db.session.execute(select(WebhookEvent)).scalars())


def event(
    event_type: str, obj: dict[str, Any], event_id: str = "evt_test_1", created: int | None = None
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": created or int(time.time()),
        "livemode": False,
        "api_version": "2026-10-28.endive",
        "data": {"object": obj},
    }


def test_forged_missing_and_stale_signatures_are_rejected(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    payload = json.dumps(event("customer.subscription.updated", {"id": "sub_x"}))
    headers = {"Content-Type": "application/json"}
    cases = {
        "forged": sign_payload(payload, "whsec_not_the_secret"),
        "stale": sign_payload(payload, billing.webhook_secret, int(time.time()) - 3600),
        "garbage": "t=1,v1=abc",
        "missing": None,
    }
    for name, signature in cases.items():
        sent = {**headers, **({"Stripe-Signature": signature} if signature else {})}
        reply = client.post("/api/webhooks/stripe", data=payload, headers=sent)
        assert reply.status_code == 400, name
        assert reply.get_json()["error"]["code"] == "invalid_signature"
    tampered = payload.replace("sub_x", "sub_y")
    reply = client.post(
        "/api/webhooks/stripe",
        data=tampered,
        headers={**headers, "Stripe-Signature": sign_payload(payload, billing.webhook_secret)},
    )
    assert reply.status_code == 400
    assert stored_events(app) == []


def test_replayed_event_id_is_acknowledged_and_applied_once(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    subscribe(client, billing, "replay-user")
    headers = auth_headers("replay-user")
    sub_id = client.get("/api/me", headers=headers).get_json()["subscription"]["id"]
    stripe_sub = billing.gateway.retrieve_subscription(sub_id)
    stale = dict(stripe_sub, status="past_due")
    fresh_event = event(
        "customer.subscription.updated", stale, "evt_replayed", created=int(time.time()) + 3600
    )

    first = post_webhook(client, fresh_event, billing.webhook_secret)
    assert first.status_code == 200 and first.get_json()["status"] == "recorded"
    assert client.get("/api/me", headers=headers).get_json()["subscription"]["status"] == "past_due"

    # Someone fixes the row by hand; a replay of the same id must not apply it again.
    with app.app_context():
        db.session.get(Subscription, sub_id).status = "active"
        db.session.commit()
    again = post_webhook(client, fresh_event, billing.webhook_secret)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    with app.app_context():
        assert db.session.get(Subscription, sub_id).status == "active"
        row = db.session.get(WebhookEvent, "evt_replayed")
        assert row.processed and row.attempts == 1


def test_unknown_event_types_are_recorded_and_acknowledged(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    reply = post_webhook(
        client,
        event("radar.early_fraud_warning.created", {"id": "issfr_1"}, "evt_unknown"),
        billing.webhook_secret,
    )
    assert reply.status_code == 200 and reply.get_json()["status"] == "recorded"
    [row] = [e for e in stored_events(app) if e.id == "evt_unknown"]
    assert row.processed and row.type == "radar.early_fraud_warning.created"


def signed_body(body: str, secret: str) -> dict[str, str]:
    return {"Stripe-Signature": sign_payload(body, secret), "Content-Type": "application/json"}


def deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def odd_events(created: int) -> dict[str, str]:
    """Signed bodies Stripe never sends, that an attacker with the secret (or a bug) can."""
    sub = {"object": "subscription", "id": "sub_odd", "status": "active"}
    return {
        "deep JSON": json.dumps(
            {"id": "evt_deep", "type": "customer.subscription.updated", "created": created}
        )[:-1]
        + ', "data": '
        + deep(50_000)
        + "}",
        "items as a string": json.dumps(
            event("customer.subscription.updated", {**sub, "items": "garbage"}, "evt_items")
        ),
        "an item that is no object": json.dumps(
            event("customer.subscription.updated", {**sub, "items": {"data": ["x"]}}, "evt_item")
        ),
        "created of 10^30": json.dumps(
            {**event("customer.subscription.updated", sub, "evt_created"), "created": 10**30}
        ),
        "a period end of 10^30": json.dumps(
            event(
                "customer.subscription.updated",
                {**sub, "items": {"data": [{"id": "si_1", "current_period_end": 10**30}]}},
                "evt_period",
            )
        ),
        "cancel_at as a string": json.dumps(
            event("customer.subscription.updated", {**sub, "cancel_at": "soon"}, "evt_cancel")
        ),
    }


def test_odd_signed_events_answer_400_and_are_parked_for_operators(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    """Issue 18, finding 8: they answered 500 (and 10^30 was never recorded as failed)."""
    for name, body in odd_events(int(time.time())).items():
        reply = client.post(
            "/api/webhooks/stripe", data=body, headers=signed_body(body, billing.webhook_secret)
        )
        assert reply.status_code == 400, (name, reply.get_data(as_text=True)[:300])
        assert reply.get_json()["error"]["code"] == "malformed_event", name
        assert "Traceback" not in reply.get_data(as_text=True)
    rows = {row.id: row for row in stored_events(app)}
    assert len(rows) == len(odd_events(0))
    assert all(row.is_parked and "MalformedEvent" in (row.error or "") for row in rows.values())
    assert all(row.raw_body for row in rows.values()), "the body as received is kept"
    listed = app.test_cli_runner().invoke(args=["billing", "events", "--failed"])
    assert listed.output.count("FAILED") == len(rows)
    with app.app_context():
        assert db.session.execute(select(Subscription)).first() is None


def test_sandbox_deliveries_are_all_verified_and_processed(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    subscribe(client, billing, "delivered")
    deliveries = billing.sandbox.deliveries
    assert deliveries and all(d["status"] == 200 for d in deliveries)
    processed = {e.id for e in stored_events(app) if e.processed}
    assert {d["event_id"] for d in deliveries} <= processed
    types = {e.type for e in stored_events(app)}
    assert {"checkout.session.completed", "customer.subscription.created", "invoice.paid"} <= types


def test_one_batch_records_new_events_once_and_tells_redeliveries_apart(app: Flask) -> None:
    """The inbox's batch write (one statement for every delivery in flight): a new event is
    recorded once even when two deliveries of it share the batch, an event we hold already is
    not inserted again, and the stored body is the JSON Stripe sent (with its raw body kept
    only when it had to be made storable)."""
    from datetime import UTC, datetime

    from app.billing.webhooks import store
    from app.db import unit_of_work

    def recorded(event_id: str, raw_body: str | None = None) -> store.Recorded:
        body = json.dumps(
            event("invoice.created", {"id": f"in_{event_id}"}, event_id, 1_900_000_000)
        )
        return store.Recorded(
            event_id, "invoice.created", body, raw_body, 1_900_000_000, datetime.now(UTC)
        )

    with app.app_context():
        with unit_of_work():
            assert store.record_events([recorded("evt_held")]) == {"evt_held"}
        with unit_of_work():
            inserted = store.record_events(
                [
                    recorded("evt_new"),
                    recorded("evt_held"),
                    recorded("evt_new"),
                    recorded("evt_raw", "raw\x01"),
                ]
            )
        assert inserted == {"evt_new", "evt_raw"}
    ours = {"evt_held", "evt_new", "evt_raw"}
    rows = {row.id: row for row in stored_events(app) if row.id in ours}
    assert sorted(rows) == sorted(ours)
    assert rows["evt_new"].data["data"]["object"]["id"] == "in_evt_new"
    assert rows["evt_new"].stripe_created == 1_900_000_000 and not rows["evt_new"].processed
    assert rows["evt_new"].raw_body is None and rows["evt_raw"].raw_body == "raw\x01"


def test_the_inbox_writer_survives_its_connection_being_cut(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    """The inbox keeps a connection of its own (app/db.py StatementWriter). When the server
    ends it (a restart, an idle timeout), the next delivery is still recorded and answered 200:
    the cut connection is dropped and the write retried on a new one."""
    first = post_webhook(
        client,
        event("invoice.created", {"id": "in_cut_1"}, "evt_writer_cut_1"),
        billing.webhook_secret,
    )
    assert first.status_code == 200 and first.get_json()["status"] == "recorded"
    if is_postgres():
        writer = app.extensions["webhook_writer"]
        with app.app_context():
            pid = writer.execute("SELECT pg_backend_pid()", {})[0][0]
            with db.engine.connect() as admin:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    second = post_webhook(
        client,
        event("invoice.created", {"id": "in_cut_2"}, "evt_writer_cut_2"),
        billing.webhook_secret,
    )
    assert second.status_code == 200, second.get_json()
    assert second.get_json()["status"] == "recorded"
    assert {"evt_writer_cut_1", "evt_writer_cut_2"} <= {row.id for row in stored_events(app)}
