"""Subscription reads and changes: GET /api/subscription/<userId>, /api/me, cancel and resume."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from app import audit
from app.api.parsing import parse_body
from app.api.replies import me_reply, subscription_reply
from app.api.schemas import CancelSubscriptionRequest, ResumeSubscriptionRequest
from app.auth import current_user, login_required
from app.billing.changes import Change, change_subscription
from app.billing.subscriptions import current_subscription, live_subscriptions
from app.billing.sync import sync_user
from app.billing.times import now_ms
from app.billing.usage_periods import settle_user
from app.errors import NotFound
from app.extensions import db
from app.models import Subscription, User
from app.ratelimit import rate_limited
from app.stripe_gateway import current_gateway

bp = Blueprint("subscriptions", __name__, url_prefix="/api")


def _wants_refresh() -> bool:
    return request.args.get("refresh", "").lower() in ("1", "true", "yes")


def _settled_subscription(user: User) -> Subscription | None:
    """The deciding subscription, with the user's cached tier brought up to now (a grace period
    or a pending cancel can run out with no webhook to tell us)."""
    row = current_subscription(user)
    settle_user(user, row, now_ms())
    db.session.commit()
    return row


@bp.get("/subscription/<user_id>")
@login_required
@rate_limited("refresh", when=_wants_refresh)
def get_subscription(user_id: str) -> dict[str, Any]:
    user = current_user()
    if user_id != user.id:
        raise NotFound("No such user.", code="user_not_found")
    if _wants_refresh():
        sync_user(current_gateway(), user)
        db.session.commit()
    return subscription_reply(user, _settled_subscription(user))


@bp.get("/me")
@login_required
@rate_limited("refresh", when=_wants_refresh)
def me() -> dict[str, Any]:
    user = current_user()
    if _wants_refresh():
        sync_user(current_gateway(), user)
        db.session.commit()
    row = _settled_subscription(user)
    return me_reply(user, row, live_subscriptions(user.id))


@bp.post("/cancel-subscription")
@login_required
@rate_limited("change")
def cancel_subscription() -> dict[str, Any]:
    body = parse_body(CancelSubscriptionRequest)
    change = Change.CANCEL_NOW if body.immediately else Change.CANCEL_AT_PERIOD_END
    user = current_user()
    audit.note(stripe_object=body.subscriptionId)
    row = change_subscription(current_gateway(), user, body.subscriptionId, change)
    audit.note(stripe_object=row.id)
    return subscription_reply(user, row)


@bp.post("/resume-subscription")
@login_required
@rate_limited("change")
def resume_subscription() -> dict[str, Any]:
    body = parse_body(ResumeSubscriptionRequest)
    user = current_user()
    audit.note(stripe_object=body.subscriptionId)
    row = change_subscription(current_gateway(), user, body.subscriptionId, Change.RESUME)
    audit.note(stripe_object=row.id)
    return subscription_reply(user, row)
