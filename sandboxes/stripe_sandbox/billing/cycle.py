"""What happens as time passes: trials end, periods renew, failed payments are retried,
incomplete subscriptions expire."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..timeutil import add_interval, next_period_end
from .invoicing import attempt_payment, bill, has_unpaid, void_invoice
from .items import interval_of, items_of, price_of
from .lifecycle import cancel_now, current_period, stop_dunning
from .lines import item_lines
from .payment_methods import payment_method_for


def end_trial_now(ctx: Ctx, sub: dict[str, Any], now: int) -> None:
    """``trial_end=now`` on update (the caller emits the update event). As Stripe does,
    ``customer.subscription.trial_will_end`` is sent when a trial is ended immediately."""
    if not sub.get("_trial_will_end_sent"):
        sub["_trial_will_end_sent"] = True
        ctx.emit("customer.subscription.trial_will_end", sub)
    end_trial(ctx, sub, now, emit_update=False)


def end_trial(ctx: Ctx, sub: dict[str, Any], at: int, emit_update: bool = True) -> None:
    """The trial is over at ``at``: start the first paid period and charge it."""
    before = ctx.render(sub)
    if sub.get("cancel_at") is not None and sub["cancel_at"] <= at:
        cancel_now(ctx, sub, at=at)
        return
    customer_pm = payment_method_for(ctx, sub["customer"], sub.get("default_payment_method"))
    missing_pm = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
    items = items_of(ctx.store, sub)
    interval, count = interval_of(price_of(ctx, items[0]))
    end = add_interval(at, interval, count)
    sub["billing_cycle_anchor"] = at
    sub["trial_end"] = at
    for it in items:
        it["current_period_start"] = at
        it["current_period_end"] = end
    if customer_pm is None and sub["collection_method"] == "charge_automatically":
        if missing_pm == "cancel":
            cancel_now(ctx, sub, at=at, reason="cancellation_requested")
            return
        if missing_pm == "pause":
            sub["status"] = "paused"
            if emit_update:
                ctx.emit_updated("customer.subscription.updated", sub, before)
            ctx.emit("customer.subscription.paused", sub)
            return
    sub["status"] = "active"
    lines = sub.get("_pending_lines", []) + item_lines(ctx, sub, (at, end))
    sub["_pending_lines"] = []
    _invoice, paid = bill(ctx, sub, lines, "subscription_cycle", (before["trial_start"] or at, at))
    if (
        not paid
        and sub["collection_method"] == "charge_automatically"
        and not sub.get("pause_collection")
    ):
        sub["status"] = "past_due"
    if emit_update:
        ctx.emit_updated("customer.subscription.updated", sub, before)


def renew(ctx: Ctx, sub: dict[str, Any], at: int) -> None:
    """The current period ended at ``at``: start the next one and invoice it."""
    before = ctx.render(sub)
    items = items_of(ctx.store, sub)
    old_start, old_end = current_period(ctx, sub)
    interval, count = interval_of(price_of(ctx, items[0]))
    new_end = next_period_end(sub["billing_cycle_anchor"], interval, count, old_end)
    for it in items:
        it["current_period_start"] = old_end
        it["current_period_end"] = new_end
    lines = sub.get("_pending_lines", []) + item_lines(ctx, sub, (old_end, new_end))
    sub["_pending_lines"] = []
    _invoice, paid = bill(ctx, sub, lines, "subscription_cycle", (old_start, old_end))
    if paid and sub["status"] == "past_due" and not has_unpaid(ctx, sub):
        sub["status"] = "active"
    elif (
        not paid
        and sub["status"] == "active"
        and sub["collection_method"] == "charge_automatically"
        and not sub.get("pause_collection")
    ):
        sub["status"] = "past_due"
    ctx.emit_updated("customer.subscription.updated", sub, before)


def retry_invoice(ctx: Ctx, invoice: dict[str, Any], at: int) -> None:
    sub = ctx.store.get("subscription", invoice["subscription"] or "")
    before = ctx.render(sub) if sub else None
    paid = attempt_payment(ctx, invoice, sub, dunning=True)
    if sub is None or before is None:
        return
    if paid:
        if sub["status"] in ("past_due", "unpaid") and not has_unpaid(ctx, sub):
            sub["status"] = "active"
            ctx.emit_updated("customer.subscription.updated", sub, before)
        return
    if invoice["next_payment_attempt"] is None and sub["status"] == "past_due":
        if ctx.config.failed_payment_outcome == "unpaid":
            sub["status"] = "unpaid"
            stop_dunning(ctx, sub)
            ctx.emit_updated("customer.subscription.updated", sub, before)
        else:
            cancel_now(ctx, sub, reason="payment_failed", at=at)


def expire_incomplete(ctx: Ctx, sub: dict[str, Any], at: int) -> None:
    sub["status"] = "incomplete_expired"
    sub["ended_at"] = at
    invoice = ctx.store.get("invoice", sub.get("latest_invoice") or "")
    if invoice is not None and invoice["status"] == "open":
        void_invoice(ctx, invoice)
    ctx.emit("customer.subscription.deleted", sub)
