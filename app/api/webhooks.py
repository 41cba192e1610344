"""POST /api/webhooks/stripe: verify -> record -> apply -> commit."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from app.api.openapi import documented
from app.api.schemas import STRIPE_EVENT_SCHEMA, WebhookReply
from app.billing.webhooks import process_event
from app.errors import DATABASE_UNAVAILABLE_ERRORS, ApiError
from app.stripe_gateway import InvalidSignature, current_gateway

bp = Blueprint("webhooks", __name__, url_prefix="/api/webhooks")


@bp.post("/stripe")
@documented(
    operation_id="receiveStripeWebhook",
    summary="Stripe's webhook receiver: verify, record and apply an event once",
    tags=("webhooks",),
    public=True,
    request_schema=STRIPE_EVENT_SCHEMA,
    request_headers=(
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
        },
    ),
    reply=WebhookReply,
    errors=(400, 500),
)
def stripe_webhook() -> tuple[Response, int]:
    gateway = current_gateway()
    payload = request.get_data(cache=False)
    try:
        event = gateway.parse_webhook(
            payload,
            request.headers.get("Stripe-Signature"),
            secret=current_app.config["STRIPE_WEBHOOK_SECRET"],
            tolerance=current_app.config["STRIPE_WEBHOOK_TOLERANCE"],
        )
    except InvalidSignature as exc:
        raise ApiError("Webhook signature verification failed.", code="invalid_signature") from exc
    try:
        # parse_webhook has decoded it as UTF-8 already.
        outcome = process_event(event, gateway, raw_body=payload.decode("utf-8"))
    except DATABASE_UNAVAILABLE_ERRORS:
        raise  # 503 database_unavailable (app/errors.py): Stripe delivers it again later
    except Exception:
        # Recorded with its error; a 5xx makes Stripe deliver it again later.
        body = {"error": {"code": "webhook_failed", "message": "Event not processed; retry later."}}
        return jsonify(body), 500
    return jsonify({"received": True, "status": outcome.status}), 200
