"""POST /api/subscription/preview-change and /api/subscription/change: switch plan
(monthly <-> yearly) or seats on the caller's own subscription, with the cost shown first."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app import audit
from app.api.openapi import documented
from app.api.parsing import parse_body
from app.api.plan_change_schemas import (
    ChangeSubscriptionRequest,
    PlanChangePreviewReply,
    PreviewChangeRequest,
)
from app.api.replies import subscription_reply
from app.api.schemas import SubscriptionReply
from app.auth import current_user, login_required
from app.billing.subscriptions import service
from app.ratelimit import rate_limited

bp = Blueprint("plan_changes", __name__, url_prefix="/api")


@bp.post("/subscription/preview-change")
@documented(
    operation_id="previewSubscriptionChange",
    summary="What switching plan or seats would cost now and on the next invoice",
    description="Nothing changes. Send the reply's `prorationDate` with the change so it "
    "charges exactly what the preview showed.",
    tags=("subscriptions",),
    request=PreviewChangeRequest,
    reply=PlanChangePreviewReply,
    errors=(400, 404, 409, 422, 503),
)
@login_required
@rate_limited("change")
def preview_change() -> dict[str, Any]:
    body = parse_body(PreviewChangeRequest)
    preview = service.preview_plan_change(
        current_user(), subscription_id=body.subscriptionId, plan=body.plan, quantity=body.quantity
    )
    return {"preview": preview.reply()}


@bp.post("/subscription/change")
@documented(
    operation_id="changeSubscription",
    summary="Switch plan (monthly <-> yearly) or seats, prorated",
    description="Applied at once (an interval change is invoiced now, the unused time "
    "credited); asking for the current plan and seats changes nothing.",
    tags=("subscriptions",),
    request=ChangeSubscriptionRequest,
    reply=SubscriptionReply,
    errors=(400, 402, 404, 409, 422, 503),
)
@login_required
@rate_limited("change")
def change_subscription() -> dict[str, Any]:
    body = parse_body(ChangeSubscriptionRequest)
    user = current_user()
    audit.note(
        stripe_object=body.subscriptionId, detail=f"plan={body.plan} quantity={body.quantity}"
    )
    row = service.change_plan_or_seats(
        user,
        subscription_id=body.subscriptionId,
        plan=body.plan,
        quantity=body.quantity,
        proration_date=body.prorationDate,
    )
    audit.note(stripe_object=row.id)
    return subscription_reply(user, row)
