"""The bare baselines of the benchmark: the least a correct endpoint has to do, in plain SQL.

- `POST /api/webhooks/stripe`: verify the Stripe signature, INSERT the event ... ON CONFLICT
  DO NOTHING, and when it is new upsert one subscription row (newer events only), commit.
  `invoice.paid` moves the subscription's period to the paid line's.
- `POST /api/webhooks/stripe/hmac-only`: verify the signature and parse the JSON, nothing
  written (`make bench-peer`'s ceiling for a Python ingest).
- `GET /api/subscription/<user_id>` and `GET /api/me`: verify the bearer JWT, one SELECT, JSON.

Served by gunicorn with the same settings as the app (`gunicorn bench.bare_app:app`) against
its own database migrated with the app's migrations (same tables and indexes). Settings from
the environment: DATABASE_URL, STRIPE_WEBHOOK_SECRET, AUTH_JWT_SECRET.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jwt
import stripe
from flask import Flask, Response, abort, jsonify, request
from sqlalchemy import create_engine, text

app = Flask(__name__)
_url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
engine = create_engine(_url, pool_size=10, max_overflow=10)
WEBHOOK_SECRET = os.environ["STRIPE_WEBHOOK_SECRET"]
JWT_SECRET = os.environ["AUTH_JWT_SECRET"]

RECORD = text(
    "INSERT INTO webhook_events (id, type, data, stripe_created, processed, attempts,"
    " processed_at, created_at) VALUES (:id, :type, CAST(:data AS jsonb), :created, true, 1,"
    " now(), now()) ON CONFLICT (id) DO NOTHING RETURNING id"
)
UPSERT = text(
    "INSERT INTO subscriptions (id, user_id, customer_id, status, price_id,"
    " current_period_start, current_period_end, cancel_at_period_end, cancel_at,"
    " last_event_created, updated_at) VALUES (:id, :user_id, :customer, :status, :price,"
    " :start, :end, :cape, :cancel_at, :created, now())"
    " ON CONFLICT (id) DO UPDATE SET status = excluded.status, price_id = excluded.price_id,"
    " current_period_start = excluded.current_period_start,"
    " current_period_end = excluded.current_period_end,"
    " cancel_at_period_end = excluded.cancel_at_period_end, cancel_at = excluded.cancel_at,"
    " last_event_created = excluded.last_event_created, updated_at = now()"
    " WHERE subscriptions.last_event_created IS NULL"
    " OR subscriptions.last_event_created < excluded.last_event_created"
)
RENEW = text(
    "UPDATE subscriptions SET current_period_start = :start, current_period_end = :end,"
    " updated_at = now() WHERE id = :id"
)
READ = text(
    "SELECT s.id, s.customer_id, s.status, s.price_id, s.current_period_start,"
    " s.current_period_end, s.cancel_at_period_end, s.cancel_at FROM users u"
    " LEFT JOIN subscriptions s ON s.id = u.stripe_subscription_id WHERE u.id = :id"
)


def _apply(conn: Any, event: dict[str, Any]) -> None:
    obj = event["data"]["object"]
    if event["type"].startswith("customer.subscription."):
        item = obj["items"]["data"][0]
        conn.execute(
            UPSERT,
            {
                "id": obj["id"],
                "user_id": (obj.get("metadata") or {}).get("userId"),
                "customer": obj["customer"],
                "status": obj["status"],
                "price": item["price"]["id"],
                "start": item["current_period_start"] * 1000,
                "end": item["current_period_end"] * 1000,
                "cape": obj["cancel_at_period_end"],
                "cancel_at": obj["cancel_at"] * 1000 if obj.get("cancel_at") else None,
                "created": event["created"],
            },
        )
    elif event["type"] == "invoice.paid":
        line = obj["lines"]["data"][0]
        sub_id = obj["parent"]["subscription_details"]["subscription"]
        period = line["period"]
        conn.execute(
            RENEW, {"id": sub_id, "start": period["start"] * 1000, "end": period["end"] * 1000}
        )


@app.post("/api/webhooks/stripe")
def webhook() -> tuple[Response, int]:
    body = request.get_data(as_text=True)
    try:
        stripe.WebhookSignature.verify_header(
            body, request.headers.get("Stripe-Signature", ""), WEBHOOK_SECRET, 300
        )
    except stripe.SignatureVerificationError:
        return jsonify({"error": "invalid signature"}), 400
    event = json.loads(body)
    with engine.begin() as conn:
        new = conn.execute(
            RECORD,
            {"id": event["id"], "type": event["type"], "data": body, "created": event["created"]},
        ).first()
        if new is not None:
            _apply(conn, event)
    return jsonify({"received": True, "status": "applied" if new else "duplicate"}), 200


@app.post("/api/webhooks/stripe/hmac-only")
def webhook_hmac_only() -> tuple[Response, int]:
    """The ceiling of a Python ingest here: verify the signature, read the JSON, answer."""
    body = request.get_data(as_text=True)
    try:
        stripe.WebhookSignature.verify_header(
            body, request.headers.get("Stripe-Signature", ""), WEBHOOK_SECRET, 300
        )
    except stripe.SignatureVerificationError:
        return jsonify({"error": "invalid signature"}), 400
    event = json.loads(body)
    return jsonify({"received": True, "id": event["id"]}), 200


@app.get("/api/me")
def me() -> Response:
    return read(None)


@app.get("/api/subscription/<user_id>")
def read(user_id: str | None) -> Response:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], options={"verify_aud": False})
    except jwt.PyJWTError:
        abort(401)
    if user_id is None:
        user_id = str(claims.get("sub"))
    elif claims.get("sub") != user_id:
        abort(404)
    with engine.connect() as conn:
        row = conn.execute(READ, {"id": user_id}).mappings().first()
    if row is None:
        abort(404)
    return jsonify({"subscription": dict(row) if row["id"] else None})
