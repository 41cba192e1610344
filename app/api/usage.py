"""GET /api/me/entitlements, POST /api/usage/generations and GET /api/usage."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from flask.blueprints import BlueprintSetupState

from app.api.openapi import documented
from app.api.parsing import parse_body, parse_query
from app.api.usage_schemas import (
    ConsumeGenerationsReply,
    ConsumeGenerationsRequest,
    EntitlementsReply,
    UsageEntryOut,
    UsagePeriodOut,
    UsageQuery,
    UsageReply,
)
from app.auth import current_caller, current_user, login_required, login_required_lean
from app.billing.plans import FREE_PLAN_ID, load_plans
from app.billing.usage.service import (
    Consumption,
    consume_generations,
    current_entitlements,
    usage_overview,
)
from app.ratelimit import rate_limited

bp = Blueprint("usage", __name__, url_prefix="/api")

UPGRADE_PATH = "/api/create-checkout-session"


@bp.record_once
def _check_plans_at_start_up(state: BlueprintSetupState) -> None:
    # A broken PLANS_FILE stops start-up with its message rather than failing the first user.
    load_plans(state.app.config.get("PLANS_FILE") or "")


@bp.get("/me/entitlements")
@documented(
    operation_id="getEntitlements",
    summary="What the caller may do now: plan, features, generations used and left",
    tags=("usage",),
    reply=EntitlementsReply,
)
@login_required
def entitlements() -> dict[str, Any]:
    user = current_user()
    granted = current_entitlements(user)
    return EntitlementsReply(
        tier=granted.tier,
        status=user.subscription_status or "free",
        features=list(granted.plan.features),
        generationsUsed=user.generations_used,
        generationsLimit=granted.limit,
        generationsRemaining=granted.remaining(user.generations_used),
        periodStart=user.usage_period_start,
        periodResetsAt=user.usage_period_end,
        accessEndsAt=granted.access.ends_at,
        credits=user.credit_balance,
    ).model_dump()


@bp.post("/usage/generations")
@documented(
    operation_id="consumeGenerations",
    summary="Consume generations atomically (402 quota_exceeded with an upgrade hint)",
    tags=("usage",),
    request=ConsumeGenerationsRequest,
    reply=ConsumeGenerationsReply,
    errors=(400, 402, 409, 422),
    headers={200: ("Idempotent-Replayed",), 402: ("Idempotent-Replayed",)},
)
@login_required_lean(writes=False)
@rate_limited("usage")
def consume() -> tuple[Response, int] | Response:
    body = parse_body(ConsumeGenerationsRequest)
    outcome = consume_generations(
        current_caller(), count=body.count, idempotency_key=body.idempotencyKey
    )
    reply = jsonify(_granted(outcome)) if outcome.granted else _refused(outcome)
    if outcome.replayed:
        reply.headers["Idempotent-Replayed"] = "true"
    return (reply, 200) if outcome.granted else (reply, 402)


def _granted(outcome: Consumption) -> dict[str, Any]:
    return ConsumeGenerationsReply(
        granted=outcome.count,
        idempotencyKey=outcome.idempotency_key,
        replayed=outcome.replayed,
        generationsUsed=outcome.used,
        generationsLimit=outcome.limit,
        generationsRemaining=outcome.remaining,
        periodResetsAt=outcome.period_end,
    ).model_dump()


def _refused(outcome: Consumption) -> Response:
    left = outcome.remaining or 0
    message = (
        f"You have used all {outcome.limit} generations of this period."
        if left == 0
        else f"This needs {outcome.count} generations and {left} remain in this period."
    )
    error: dict[str, Any] = {
        "code": "quota_exceeded",
        "message": message,
        "idempotencyKey": outcome.idempotency_key,
        "replayed": outcome.replayed,
        "generationsUsed": outcome.used,
        "generationsLimit": outcome.limit,
        "generationsRemaining": left,
        "periodResetsAt": outcome.period_end,
    }
    if outcome.tier == FREE_PLAN_ID:
        error["upgrade"] = UPGRADE_PATH
    return jsonify({"error": error})


@bp.get("/usage")
@documented(
    operation_id="getUsage",
    summary="The current usage period and its ledger entries",
    tags=("usage",),
    query=UsageQuery,
    reply=UsageReply,
    errors=(422,),
)
@login_required
@rate_limited("usage")
def usage() -> dict[str, Any]:
    query = parse_query(UsageQuery)
    overview = usage_overview(current_user(), limit=query.limit)
    user, granted = overview.user, overview.entitlements
    return UsageReply(
        tier=granted.tier,
        period=UsagePeriodOut(
            start=user.usage_period_start,
            resetsAt=user.usage_period_end,
            used=user.generations_used,
            limit=granted.limit,
            remaining=granted.remaining(user.generations_used),
        ),
        entries=[
            UsageEntryOut(
                id=entry.id,
                kind=entry.kind,  # type: ignore[arg-type]
                count=entry.count,
                result=entry.result,
                reason=entry.reason,
                idempotencyKey=entry.idempotency_key,
                generationsUsed=entry.generations_used,
                generationsLimit=entry.generations_limit,
                createdAt=entry.created_at_ms,
            )
            for entry in overview.entries
        ],
    ).model_dump()
