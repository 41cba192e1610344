"""POST /api/create-checkout-session and /api/retrieve-checkout-session."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app import audit
from app.api.openapi import documented
from app.api.parsing import parse_body
from app.api.schemas import (
    CheckoutSessionOut,
    CheckoutSessionReply,
    CreateCheckoutSessionRequest,
    RetrieveCheckoutSessionRequest,
)
from app.auth import current_user, login_required
from app.billing.errors import NotFound
from app.billing.subscriptions import service
from app.ratelimit import rate_limited

bp = Blueprint("checkout", __name__, url_prefix="/api")


@bp.post("/create-checkout-session")
@documented(
    operation_id="createCheckoutSession",
    summary="Start a Stripe Checkout for a paid plan",
    description=(
        "409 `subscription_exists` when the caller already has a live subscription. Repeated"
        " calls for the same price (a double click) get the same open session back; 409"
        " `checkout_in_progress` if another call is still making it after"
        " CHECKOUT_WAIT_SECONDS."
    ),
    tags=("checkout",),
    request=CreateCheckoutSessionRequest,
    reply=CheckoutSessionReply,
    errors=(400, 402, 404, 409, 422, 503),
)
@login_required
@rate_limited("checkout")
def create_checkout_session() -> dict[str, Any]:
    body = parse_body(CreateCheckoutSessionRequest)
    user = current_user()
    if body.userId is not None and body.userId != user.id:
        raise NotFound("No such user.", code="user_not_found")
    session = service.start_checkout(
        user,
        price_id=body.priceId,
        plan=body.plan,
        success_url=body.successUrl,
        cancel_url=body.cancelUrl,
        metadata=body.metadata,
        quantity=body.quantity,
        promotion_code=body.promotionCode,
    )
    audit.note(stripe_object=session.id, detail=session.price_id)
    out = CheckoutSessionOut(id=session.id, url=session.url, status=session.status)
    return {"session": out.model_dump(include={"id", "url", "status"})}


@bp.post("/retrieve-checkout-session")
@documented(
    operation_id="retrieveCheckoutSession",
    summary="Read a checkout session back after the redirect (and fulfil it)",
    tags=("checkout",),
    request=RetrieveCheckoutSessionRequest,
    reply=CheckoutSessionReply,
    errors=(400, 404, 422, 503),
)
@login_required
@rate_limited("checkout")
def retrieve_checkout_session() -> dict[str, Any]:
    body = parse_body(RetrieveCheckoutSessionRequest)
    audit.note(stripe_object=body.sessionId)
    session = service.fulfil_from_redirect(current_user(), body.sessionId)
    out = CheckoutSessionOut(
        id=session.id,
        status=session.status,
        customerId=session.customer_id,
        subscriptionId=session.subscription_id,
        paymentStatus=session.payment_status,
    )
    return {"session": out.model_dump(exclude={"url"})}
