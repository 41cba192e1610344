"""POST /api/create-portal-session: Stripe's billing portal for the caller's own customer."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from app import audit
from app.api.openapi import documented
from app.api.parsing import parse_body
from app.api.schemas import CreatePortalSessionRequest, PortalReply
from app.auth import current_user, login_required
from app.billing.errors import NotFound
from app.billing.redirects import default_redirect, ensure_allowed_url
from app.db import outside_transaction
from app.ratelimit import rate_limited
from app.stripe.gateway import current_gateway

bp = Blueprint("portal", __name__, url_prefix="/api")


@bp.post("/create-portal-session")
@documented(
    operation_id="createPortalSession",
    summary="Open Stripe's billing portal for the caller's customer",
    tags=("subscriptions",),
    request=CreatePortalSessionRequest,
    reply=PortalReply,
    errors=(400, 404, 422, 503),
)
@login_required
@rate_limited("portal")
def create_portal_session() -> dict[str, Any]:
    body = parse_body(CreatePortalSessionRequest)
    user = current_user()
    customer_id = user.stripe_customer_id
    if customer_id is None or (body.customerId is not None and body.customerId != customer_id):
        raise NotFound("No such customer.", code="customer_not_found")
    origins = current_app.config["FRONTEND_URLS"]
    return_url = ensure_allowed_url(
        body.returnUrl or default_redirect(current_app.config, "return"),
        origins,
        field="returnUrl",
    )
    audit.note(stripe_object=customer_id)
    outside_transaction()
    session = current_gateway().create_portal_session(
        customer_id=customer_id, return_url=return_url
    )
    return {"url": session["url"]}
