"""Users paying for more than one live subscription, and what to do about them.

Checkout keeps it to one (checkout.py); two payments in the same instant can still make two.
DUPLICATE_SUBSCRIPTION_POLICY "cancel_newer" acts at once: when a transaction that stored a
second live subscription commits (`report_duplicates` marks the user), a background thread of
the process keeps the oldest, and for each newer one refunds its latest invoice in full and
cancels it now, without proration (`resolve_at_once`; an audit entry each).
`flask billing check` finds what is left and applies the policy too: "flag" reports them
(exit 1, for a human to decide); "cancel_newer" does exactly what the at-once path does.

Replay-safe: the refund comes first and is keyed by its payment (a second one is Stripe's
answer to the first, never a second payout), the cancel second. A run that stops between the
two (a lost answer, a crash) leaves the subscription live, so the next run (or the other
process acting on the same user) finds it again, is answered the same refund and cancels;
a second cancel finds it ended. The other order could cancel and then lose the refund for good:
an ended subscription is no longer a duplicate anyone looks at.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from flask import Flask, current_app, has_app_context
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, SessionTransaction

from app import audit
from app.billing.errors import ProviderRejected
from app.billing.statuses import ENDED_STATUSES, LIVE_STATUSES
from app.billing.subscriptions.reads import apply_read
from app.billing.subscriptions.summary import DUPLICATES_FOUND, live_subscriptions
from app.db import end_read, unit_of_work
from app.extensions import db
from app.models import Subscription, User, utcnow
from app.stripe.gateway import StripeDict, StripeGateway, current_gateway
from app.stripe.objects import object_id

log = logging.getLogger(__name__)


@dataclass
class Duplicate:
    user_id: str
    keep: str
    newer: list[str]


@dataclass
class DuplicateReport:
    found: list[Duplicate] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    refunded: list[str] = field(default_factory=list)  # refund ids
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was done, one line each


def find_duplicates() -> list[Duplicate]:
    users = db.session.execute(
        select(Subscription.user_id)
        .where(Subscription.user_id.is_not(None), Subscription.status.in_(LIVE_STATUSES))
        .group_by(Subscription.user_id)
        .having(func.count() > 1)
        .order_by(Subscription.user_id)
    ).scalars()
    found = []
    for user_id in [user for user in users if user]:
        # Oldest first: the first one paid for is kept.
        rows = sorted(live_subscriptions(user_id), key=lambda r: (r.stripe_created or 0, r.id))
        found.append(Duplicate(user_id, rows[0].id, [row.id for row in rows[1:]]))
    end_read()
    return found


def cancel_newer(gateway: StripeGateway, duplicates: list[Duplicate]) -> DuplicateReport:
    """`flask billing check` under cancel_newer: what the at-once path does, user by user
    (Stripe, not our rows, decides which subscriptions are still live)."""
    report = DuplicateReport(found=duplicates)
    for duplicate in duplicates:
        try:
            done = resolve_at_once(gateway, duplicate.user_id)
        except Exception as exc:
            report.errors.append(f"user {duplicate.user_id}: {type(exc).__name__}: {exc}")
            continue
        report.canceled += done.canceled
        report.refunded += done.refunded
        report.errors += done.errors
        report.notes += done.notes
        if not (done.canceled or done.errors):
            report.notes.append(
                f"user {duplicate.user_id}: Stripe has one live subscription only; "
                "our rows follow when its events are applied (or `flask billing sync`)"
            )
    return report


# -- acting at once ------------------------------------------------------------------------------

_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _background() -> ThreadPoolExecutor:
    """One thread per process: resolutions are rare and each is a few Stripe calls."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duplicates")
        return _executor


@event.listens_for(Session, "after_commit")
def _act_after_commit(session: Session) -> None:
    users = session.info.pop(DUPLICATES_FOUND, None)
    if not users or not has_app_context():
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config["DUPLICATE_SUBSCRIPTION_POLICY"] != "cancel_newer":
        return  # "flag": logged already, reported by `flask billing check`
    for user_id in sorted(users):
        _background().submit(_resolve_in_background, app, user_id)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, previous: SessionTransaction) -> None:
    # Only the whole transaction's rollback: a savepoint's (the applier isolates a failing
    # event in one) leaves the other writes, and the resolver re-reads before acting anyway.
    if previous.parent is None and not previous.nested:
        session.info.pop(DUPLICATES_FOUND, None)


def _resolve_in_background(app: Flask, user_id: str) -> None:
    with app.app_context():
        try:
            report = resolve_at_once(current_gateway(), user_id)
            for error in report.errors:
                log.error("duplicate policy for user %s: %s", user_id, error)
        except Exception:
            log.exception("duplicate policy for user %s failed", user_id)
        finally:
            db.session.remove()


def resolve_at_once(gateway: StripeGateway, user_id: str) -> DuplicateReport:
    """Keep the user's oldest live subscription; for each newer one refund its latest invoice
    in full, then cancel it now (no proration: it is refunded whole), with an audit entry."""
    # Stripe decides, not our rows: the events that made the second one live may still be
    # being applied (ours can show it incomplete for a moment after a batch retried).
    customer = db.session.execute(
        select(User.stripe_customer_id).where(User.id == user_id)
    ).scalar_one_or_none()
    end_read()
    if customer is None:
        return DuplicateReport()
    live = [s for s in gateway.live_subscriptions(customer) if s.get("status") in LIVE_STATUSES]
    live.sort(key=lambda s: (s.get("created") or 0, s["id"]))
    if len(live) < 2:
        return DuplicateReport()
    duplicate = Duplicate(user_id, live[0]["id"], [s["id"] for s in live[1:]])
    report = DuplicateReport(found=[duplicate])
    for subscription in live[1:]:
        subscription_id = subscription["id"]
        try:
            invoice = object_id(subscription.get("latest_invoice"))
            refund = _refund_whole(gateway, invoice) if invoice else None
            asked_at = utcnow()
            answer = _cancel_now(gateway, subscription_id)
            detail = (
                f"kept {duplicate.keep}; refund {refund['id']} of {invoice}: "
                f"{refund['amount']} {refund['currency']}"
                if refund
                else f"kept {duplicate.keep}; no paid invoice to refund"
            )
            with unit_of_work():
                apply_read(gateway, answer, read_started=asked_at)
                audit.record(
                    "duplicate.cancel_refund",
                    "ok",
                    user_id=user_id,
                    stripe_object=subscription_id,
                    detail=detail,
                )
            report.canceled.append(subscription_id)
            if refund:
                report.refunded.append(refund["id"])
            report.notes.append(f"canceled {subscription_id} (newer duplicate); {detail}")
            log.warning("user %s paid twice: canceled %s, %s", user_id, subscription_id, detail)
        except Exception as exc:
            report.errors.append(f"{subscription_id}: {type(exc).__name__}: {exc}")
    return report


def _refund_whole(gateway: StripeGateway, invoice_id: str) -> StripeDict | None:
    """Refund what the invoice's payment took; None when nothing was paid (a trial's)."""
    try:
        return gateway.refund_invoice(invoice_id, reason="duplicate")
    except ProviderRejected as exc:
        if exc.code == "invoice_not_paid":
            return None
        raise


def _cancel_now(gateway: StripeGateway, subscription_id: str) -> StripeDict:
    """Cancel now; one already ended (another process got there first) is read instead."""
    try:
        return gateway.cancel_subscription_now(subscription_id)
    except ProviderRejected as exc:
        if exc.missing:
            raise
        current = gateway.retrieve_subscription(subscription_id)
        if current.get("status") not in ENDED_STATUSES:
            raise
        return current
