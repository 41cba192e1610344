"""GET /api/plans: the pricing table, public, from the plans configuration and Stripe's prices
(cached; see app/billing/plans.py)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from app.api.openapi import documented
from app.api.schemas import PlansReply
from app.billing.plans import current_plans, priced_plans
from app.billing.time import now_ms
from app.stripe.gateway import current_gateway

bp = Blueprint("plans", __name__, url_prefix="/api")


@bp.get("/plans")
@documented(
    operation_id="listPlans",
    summary="The plans, their limits, features and Stripe prices (for a pricing table)",
    description="Public. Prices are cached: read from Stripe at most every PLANS_CACHE_SECONDS "
    "and after price/product webhooks, never per request.",
    tags=("plans",),
    public=True,
    reply=PlansReply,
    errors=(503,),
)
def list_plans() -> dict[str, Any]:
    table = priced_plans(
        current_gateway(),
        current_plans(),
        current_app.config,
        now=now_ms(),
        ttl_seconds=current_app.config["PLANS_CACHE_SECONDS"],
    )
    return PlansReply.model_validate(table).model_dump()
