"""POST /api/webhooks/stripe: verify -> record durably -> 200. The applier applies the event
after the answer (app/billing/webhooks/).

Never user-limited: Stripe's deliveries and retries must always get through. The body cap
(WEBHOOK_MAX_BYTES) is checked against Content-Length before the body is read (app/security.py).
"""

from __future__ import annotations

from flask import Blueprint, g, request

from app import audit
from app.api.openapi import documented
from app.api.schemas import STRIPE_EVENT_SCHEMA, WebhookReply
from app.api.webhook_fast_path import FAST_PATH_FAILURE, FastPathFailure
from app.billing.webhooks.service import BadSignature, MalformedEvent, receive

bp = Blueprint("webhooks", __name__, url_prefix="/api/webhooks")


@bp.post("/stripe")
@documented(
    operation_id="receiveStripeWebhook",
    summary="Stripe's webhook receiver: verify and record an event once (applied after the 200)",
    description="`recorded`: the event is ours (durably); `duplicate`: we had it already. "
    "A 5xx means nothing was recorded: Stripe delivers it again.",
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
    errors=(400, 413, 503),
)
def stripe_webhook() -> dict[str, object]:
    # The fast path (webhook_fast_path.py) answers the common 200 itself; every other reply is
    # made here, that of a write it tried and saw fail included (not tried twice).
    failed: FastPathFailure | None = request.environ.get(FAST_PATH_FAILURE)
    try:
        if failed is not None:
            failed.raise_again()
        receipt = receive(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    except MalformedEvent:
        g.webhook_status = "malformed"
        raise
    except BadSignature:
        g.webhook_status = "rejected"
        raise
    except Exception:
        g.webhook_status = "failed"
        raise  # 503 database_unavailable (app/errors.py): Stripe delivers it again later
    g.webhook_status = receipt.status
    g.log_fields = {
        "event_id": receipt.event_id,
        "event_type": receipt.event_type,
        "outcome": receipt.status,
    }
    audit.mark_written()  # the applier writes each event's entry; a redelivery's is in the batch
    return {"received": True, "status": receipt.status}
