"""Subscription reads and changes: GET /api/subscription/<userId>, /api/me, cancel and resume."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from app import audit
from app.api.openapi import documented
from app.api.parsing import parse_body, parse_query
from app.api.replies import me_reply, subscription_reply
from app.api.schemas import (
    CancelSubscriptionRequest,
    MeReply,
    RefreshQuery,
    ResumeSubscriptionRequest,
    SubscriptionReply,
)
from app.auth import current_caller, current_user, login_required, login_required_lean
from app.billing.errors import NotFound
from app.billing.subscriptions import service
from app.ratelimit import rate_limited

bp = Blueprint("subscriptions", __name__, url_prefix="/api")


def _wants_refresh() -> bool:
    """`?refresh=` as a boolean (true/false, 1/0, yes/no); anything else is a 422."""
    if not request.args:  # the common read: no query string, nothing to validate
        return False
    return parse_query(RefreshQuery).refresh


def _standing(*, refresh: bool) -> service.Standing:
    return service.standing(current_caller(), current_user, refresh=refresh)


@bp.get("/subscription/<user_id>")
@documented(
    operation_id="getSubscription",
    summary="The caller's subscription, from our database (?refresh=true re-reads Stripe)",
    tags=("subscriptions",),
    query=RefreshQuery,
    reply=SubscriptionReply,
    errors=(404, 422, 503),
)
@login_required_lean(writes=False)
@rate_limited("refresh", when=_wants_refresh)
def get_subscription(user_id: str) -> dict[str, Any]:
    refresh = _wants_refresh()
    if user_id != current_caller().id:
        raise NotFound("No such user.", code="user_not_found")
    standing = _standing(refresh=refresh)
    return subscription_reply(standing.user, standing.subscription)


@bp.get("/me")
@documented(
    operation_id="getMe",
    summary="The caller, their tier and deciding subscription",
    tags=("subscriptions",),
    query=RefreshQuery,
    reply=MeReply,
    errors=(422, 503),
)
@login_required_lean(writes=False)
@rate_limited("refresh", when=_wants_refresh)
def me() -> dict[str, Any]:
    standing = _standing(refresh=_wants_refresh())
    return me_reply(standing.user, standing.subscription, standing.live)


@bp.post("/cancel-subscription")
@documented(
    operation_id="cancelSubscription",
    summary="Cancel at the end of the period (default) or now",
    tags=("subscriptions",),
    request=CancelSubscriptionRequest,
    reply=SubscriptionReply,
    errors=(400, 404, 409, 422, 503),
)
@login_required
@rate_limited("change")
def cancel_subscription() -> dict[str, Any]:
    body = parse_body(CancelSubscriptionRequest)
    user = current_user()
    audit.note(stripe_object=body.subscriptionId)
    changed = service.cancel(user, body.subscriptionId, immediately=body.immediately)
    audit.note(stripe_object=changed.subscription.id)
    return subscription_reply(changed.user, changed.subscription)


@bp.post("/resume-subscription")
@documented(
    operation_id="resumeSubscription",
    summary="Undo a pending cancellation",
    tags=("subscriptions",),
    request=ResumeSubscriptionRequest,
    reply=SubscriptionReply,
    errors=(400, 404, 409, 422, 503),
)
@login_required
@rate_limited("change")
def resume_subscription() -> dict[str, Any]:
    body = parse_body(ResumeSubscriptionRequest)
    user = current_user()
    audit.note(stripe_object=body.subscriptionId)
    changed = service.resume(user, body.subscriptionId)
    audit.note(stripe_object=changed.subscription.id)
    return subscription_reply(changed.user, changed.subscription)
