"""POST /api/create-checkout-session and /api/retrieve-checkout-session."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

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
from app.billing.errors import NotFound, ProviderRejected
from app.billing.plans import Catalog
from app.billing.redirects import default_redirect, ensure_allowed_url
from app.billing.subscriptions.checkout import fulfil_checkout_session, start_checkout
from app.db import outside_transaction, unit_of_work
from app.models import utcnow
from app.ratelimit import rate_limited
from app.stripe.gateway import current_gateway
from app.stripe.objects import object_id

bp = Blueprint("checkout", __name__, url_prefix="/api")


@bp.post("/create-checkout-session")
@documented(
    operation_id="createCheckoutSession",
    summary="Start a Stripe Checkout for a paid plan",
    description="409 `subscription_exists` when the caller already has a live subscription.",
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
    price_id = Catalog.from_config(current_app.config).resolve(
        price_id=body.priceId, plan=body.plan
    )
    config = current_app.config
    origins = config["FRONTEND_URLS"]
    success_url = ensure_allowed_url(
        body.successUrl or default_redirect(config, "success"), origins, field="successUrl"
    )
    cancel_url = ensure_allowed_url(
        body.cancelUrl or default_redirect(config, "cancel"), origins, field="cancelUrl"
    )
    session = start_checkout(
        current_gateway(),
        user,
        price_id=price_id,
        success_url=success_url,
        cancel_url=cancel_url,
        metadata=body.metadata,
    )
    audit.note(stripe_object=session["id"], detail=price_id)
    out = CheckoutSessionOut(id=session["id"], url=session.get("url"), status=session.get("status"))
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
    user = current_user()
    gateway = current_gateway()
    audit.note(stripe_object=body.sessionId)
    outside_transaction()
    read_started = utcnow()
    try:
        session = gateway.retrieve_checkout_session(body.sessionId)
    except ProviderRejected as exc:
        if exc.missing:  # the same answer as another user's session: no existence oracle
            raise NotFound("No such checkout session.", code="checkout_session_not_found") from exc
        raise
    # Checks the session is the caller's (404 otherwise), then fulfils from the redirect too:
    # the webhook may be late, and applying twice is harmless.
    with unit_of_work():
        fulfil_checkout_session(session, user=user, gateway=gateway, read_started=read_started)
    out = CheckoutSessionOut(
        id=session["id"],
        status=session.get("status"),
        customerId=object_id(session.get("customer")),
        subscriptionId=object_id(session.get("subscription")),
        paymentStatus=session.get("payment_status"),
    )
    return {"session": out.model_dump(exclude={"url"})}
