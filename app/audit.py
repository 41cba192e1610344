"""The audit log: who (user, IP, request id) did what (action) to which Stripe object, with
what outcome, when. Payment-related requests are recorded once each, after the reply is known
(`audit_response`); the webhook path adds flags inside its own transaction (`record`).

Never written: tokens, secrets, card data, request bodies. Only ids, an action, an outcome code
and a short detail."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask, Response, g, has_request_context, request
from sqlalchemy import insert, select

from app.db import rollback_quietly, unit_of_work
from app.extensions import db
from app.models import AuditEntry, utcnow
from app.observability.request_id import current_request_id
from app.safe_text import db_safe, for_log

log = logging.getLogger(__name__)

# endpoint -> action; the outcome is "ok" or the error code of the reply.
AUDITED_ENDPOINTS = {
    "checkout.create_checkout_session": "checkout.create",
    "checkout.retrieve_checkout_session": "checkout.retrieve",
    "subscriptions.cancel_subscription": "subscription.cancel",
    "subscriptions.resume_subscription": "subscription.resume",
    "plan_changes.change_subscription": "subscription.change",
    "portal.create_portal_session": "portal.open",
    "webhooks.stripe_webhook": "webhook",
}
# Recorded only when they are refused (a granted usage call is in the usage ledger already).
AUDITED_WHEN_REFUSED = {"usage.consume": "usage"}
REFRESH_ENDPOINTS = {"subscriptions.get_subscription", "subscriptions.me"}


def note(*, stripe_object: str | None = None, detail: str | None = None) -> None:
    """Tell the request's audit entry which Stripe object it touched."""
    if stripe_object is not None:
        g.audit_object = stripe_object
    if detail is not None:
        g.audit_detail = detail


def record(
    action: str,
    outcome: str,
    *,
    user_id: str | None = None,
    stripe_object: str | None = None,
    detail: str | None = None,
    for_request: bool = False,
) -> None:
    """Add an entry to the current transaction (committed, or rolled back, with it).

    `for_request`: this is the request's own entry (written inside its transaction, which
    saves a commit), so `audit_response` adds none."""
    if for_request:
        mark_written()
    # A Core INSERT, not an ORM object: no unit-of-work bookkeeping on the webhook's hot path.
    db.session.execute(
        insert(AuditEntry).values(
            entry_values(
                action, outcome, user_id=user_id, stripe_object=stripe_object, detail=detail
            )
        )
    )


def mark_written() -> None:
    """The request's own entry is in its transaction: `audit_response` adds none."""
    if has_request_context():
        g.audit_written = True


def entry_values(
    action: str,
    outcome: str,
    *,
    user_id: str | None = None,
    stripe_object: str | None = None,
    detail: str | None = None,
    ip: str | None = None,
    request_id: str | None = None,
) -> dict[str, object]:
    """The columns of one entry (for `record`, and for statements that write it themselves).
    `ip` and `request_id`: of the request the entry is about, when that is not the one being
    served (a webhook batch writes the redeliveries of other requests)."""
    if ip is None and has_request_context():
        ip = request.remote_addr
    return {
        "at": utcnow(),
        "action": action[:64],
        "outcome": outcome[:64],
        "user_id": _clip(user_id if user_id is not None else _current_user_id(), 255),
        "ip": _clip(ip, 64),
        "request_id": request_id if request_id is not None else current_request_id(),
        "stripe_object": _clip(stripe_object, 255),
        "detail": _clip(detail, 500),
    }


def audit_response(response: Response) -> Response:
    """after_request: one entry for each payment-related request (and every 429)."""
    action = _action_for(response)
    if action is None:
        return response
    if response.status_code < 400 and getattr(g, "audit_written", False):
        return response  # written inside the request's own transaction
    outcome = "ok" if response.status_code < 400 else _error_code(response)
    if outcome == "database_unavailable":  # nowhere to write it; don't wait on it either
        log.warning("not audited (database unavailable): %s", action)
        return response
    try:
        if response.status_code >= 400:
            rollback_quietly()  # never commit what a failed request left half-done
        with unit_of_work():
            record(
                action,
                outcome,
                stripe_object=getattr(g, "audit_object", None),
                detail=getattr(g, "audit_detail", None),
            )
    except Exception:
        log.error("could not write the audit entry for %s (%s)", action, for_log(outcome))
    return response


def _action_for(response: Response) -> str | None:
    endpoint = request.endpoint or ""
    if response.status_code == 429:
        return "rate_limited"
    action = AUDITED_ENDPOINTS.get(endpoint)
    if action == "webhook":
        return "webhook." + (getattr(g, "webhook_status", None) or "rejected")
    if action == "checkout.create" and _error_code(response) == "subscription_exists":
        return "checkout.duplicate_subscription"
    if action is not None:
        return action
    if endpoint in AUDITED_WHEN_REFUSED and response.status_code == 402:
        return AUDITED_WHEN_REFUSED[endpoint] + ".refused"
    if endpoint in REFRESH_ENDPOINTS and request.args.get("refresh"):
        return "subscription.refresh"
    return None


def _error_code(response: Response) -> str:
    body = response.get_json(silent=True) if response.is_json else None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code else f"http_{response.status_code}"


def _current_user_id() -> str | None:
    user = getattr(g, "user", None) if has_request_context() else None
    return getattr(user, "id", None)


def _clip(value: str | None, limit: int) -> str | None:
    return None if value is None else db_safe(str(value))[:limit]


def install(app: Flask) -> None:
    app.after_request(audit_response)


def entries(
    *, user_id: str | None = None, since: datetime | None = None, limit: int = 100
) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if user_id is not None:
        query = query.where(AuditEntry.user_id == user_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    return list(db.session.execute(query).scalars())
