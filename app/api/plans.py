"""GET /api/plans: the pricing table, public, from the plans configuration and Stripe's prices
(cached; see app/billing/plans.py)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app.api.openapi import documented
from app.api.schemas import PlansReply
from app.billing.plans_table import plans_table

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
    return PlansReply.model_validate(plans_table()).model_dump()
