"""Subscription reads and changes: GET /api/subscription/<userId>, /api/me, cancel and resume."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from app.api.parsing import parse_body
from app.api.replies import me_reply, subscription_reply
from app.api.schemas import CancelSubscriptionRequest, ResumeSubscriptionRequest
from app.auth import current_user, login_required
from app.billing.policy import ENDED_STATUSES
from app.billing.subscriptions import apply_subscription, current_subscription, owned_subscription
from app.billing.sync import sync_user
from app.billing.times import now_ms
from app.billing.usage_periods import settle_user
from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import Subscription, User
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
def me() -> dict[str, Any]:
    user = current_user()
    if _wants_refresh():
        sync_user(current_gateway(), user)
        db.session.commit()
    return me_reply(user, _settled_subscription(user))


def _changeable_subscription(user: User, subscription_id: str | None) -> Subscription:
    row = owned_subscription(user, subscription_id)
    if row is None or row.status is None:
        raise NotFound("No such subscription.", code="subscription_not_found")
    if row.status in ENDED_STATUSES:
        raise Conflict("This subscription has already ended.", code="subscription_ended")
    return row


@bp.post("/cancel-subscription")
@login_required
def cancel_subscription() -> dict[str, Any]:
    body = parse_body(CancelSubscriptionRequest)
    user = current_user()
    row = _changeable_subscription(user, body.subscriptionId)
    gateway = current_gateway()
    db.session.commit()
    if body.immediately:
        updated = gateway.cancel_subscription_now(row.id)
    else:
        updated = gateway.set_cancel_at_period_end(row.id, True)
    row = apply_subscription(updated, reread=gateway.retrieve_subscription)
    db.session.commit()
    return subscription_reply(user, row)


@bp.post("/resume-subscription")
@login_required
def resume_subscription() -> dict[str, Any]:
    body = parse_body(ResumeSubscriptionRequest)
    user = current_user()
    row = _changeable_subscription(user, body.subscriptionId)
    gateway = current_gateway()
    db.session.commit()
    updated = gateway.set_cancel_at_period_end(row.id, False)
    row = apply_subscription(updated, reread=gateway.retrieve_subscription)
    db.session.commit()
    return subscription_reply(user, row)
