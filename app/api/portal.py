"""POST /api/create-portal-session: Stripe's billing portal for the caller's own customer."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app import audit
from app.api.openapi import documented
from app.api.parsing import parse_body
from app.api.schemas import CreatePortalSessionRequest, PortalReply
from app.auth import current_user, login_required
from app.billing.subscriptions import service
from app.ratelimit import rate_limited

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
    audit.note(stripe_object=user.stripe_customer_id)
    url = service.open_portal(user, customer_id=body.customerId, return_url=body.returnUrl)
    return {"url": url}
