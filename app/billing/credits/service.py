"""Buying a credit pack: a Checkout session in payment mode for the configured price."""

from __future__ import annotations

from flask import current_app

from app.billing.errors import InvalidRequest
from app.billing.redirects import default_redirect, ensure_allowed_url
from app.billing.subscriptions.checkout import ensure_customer
from app.billing.subscriptions.service import CheckoutView
from app.db import outside_transaction
from app.models import User
from app.stripe.gateway import current_gateway


def start_credit_pack_checkout(
    user: User, *, success_url: str | None, cancel_url: str | None
) -> CheckoutView:
    config = current_app.config
    price_id = config.get("STRIPE_CREDIT_PACK_PRICE_ID") or ""
    if not price_id:
        raise InvalidRequest("No credit pack is offered.", code="unknown_price")
    origins = config["FRONTEND_URLS"]
    success = ensure_allowed_url(
        success_url or default_redirect(config, "success"), origins, field="successUrl"
    )
    cancel = ensure_allowed_url(
        cancel_url or default_redirect(config, "cancel"), origins, field="cancelUrl"
    )
    gateway = current_gateway()
    customer_id, _created = ensure_customer(gateway, user)
    outside_transaction()
    session = gateway.create_credit_pack_session(
        user_id=user.id,
        customer_id=customer_id,
        price_id=price_id,
        generations=int(config["CREDIT_PACK_GENERATIONS"]),
        success_url=success,
        cancel_url=cancel,
    )
    return CheckoutView.of(session, price_id)
