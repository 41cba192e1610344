"""POST /api/webhooks/stripe: verify -> record -> apply -> commit.

Never user-limited: Stripe's deliveries and retries must always get through. The body cap
(WEBHOOK_MAX_BYTES) is checked against Content-Length before the body is read (app/security.py).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, jsonify, request

from app import audit
from app.api.openapi import documented
from app.api.schemas import STRIPE_EVENT_SCHEMA, WebhookReply
from app.billing.webhooks.receive import MalformedEvent, process_event
from app.errors import DATABASE_UNAVAILABLE_ERRORS, ApiError
from app.stripe.gateway import InvalidSignature, current_gateway

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
    errors=(400, 413, 500, 503),
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
    audit.note(stripe_object=str(event.get("id")), detail=str(event.get("type")))
    try:
        # parse_webhook has decoded it as UTF-8 already.
        outcome = process_event(event, gateway, raw_body=payload.decode("utf-8"))
    except DATABASE_UNAVAILABLE_ERRORS:
        g.webhook_status = "failed"
        raise  # 503 database_unavailable (app/errors.py): Stripe delivers it again later
    except MalformedEvent:
        # Recorded as failed (billing events --failed, billing check) with the raw body.
        g.webhook_status = "malformed"
        body = {"error": {"code": "malformed_event", "message": "Event can't be applied."}}
        return jsonify(body), 400
    except Exception:
        # Recorded with its error; a 5xx makes Stripe deliver it again later.
        g.webhook_status = "failed"
        body = {"error": {"code": "webhook_failed", "message": "Event not processed; retry later."}}
        return jsonify(body), 500
    g.webhook_status = outcome.status
    return jsonify({"received": True, "status": outcome.status}), 200
