"""Subscription lifecycle: creation, trials, renewals, price changes with
prorations, cancellation, dunning outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..context import Ctx
from ..ids import new_id
from ..resources.payments import payment_method_for
from ..timeutil import add_interval, next_period_end
from ..wire import StripeError, apply_metadata, missing
from .invoicing import (
    attempt_payment,
    bill,
    build_invoice,
    finalize_invoice,
    has_unpaid,
    item_lines,
    make_line,
    mark_paid,
    void_invoice,
)
from .items import interval_of, items_of, new_item, price_of, product_name


def create_subscription(
    ctx: Ctx,
    customer: dict[str, Any],
    entries: list[tuple[dict[str, Any], int, dict[str, str]]],
    *,
    trial_end: int | None = None,
    metadata: dict[str, str] | None = None,
    description: str | None = None,
    default_payment_method: str | None = None,
    payment_behavior: str = "allow_incomplete",
    collection_method: str = "charge_automatically",
    days_until_due: int | None = None,
    cancel_at_period_end: bool = False,
    cancel_at: int | None = None,
    trial_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    now = ctx.now_for(customer["id"])
    if trial_end is not None and trial_end <= now:
        trial_end = None
    first_price = entries[0][0]
    rec = first_price["recurring"]
    period_end = trial_end or add_interval(now, rec["interval"], rec["interval_count"])
    sub: dict[str, Any] = {
        "id": new_id("sub"),
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": trial_end or now,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic", "flexible": None},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": collection_method,
        "created": now,
        "currency": first_price["currency"],
        "customer": customer["id"],
        "customer_account": None,
        "days_until_due": days_until_due,
        "default_payment_method": default_payment_method,
        "default_source": None,
        "default_tax_rates": [],
        "description": description,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": dict(metadata or {}),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "trialing" if trial_end else "incomplete",
        "test_clock": customer.get("test_clock"),
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {
            "end_behavior": {
                "missing_payment_method": (
                    ((trial_settings or {}).get("end_behavior") or {}).get("missing_payment_method")
                    or "create_invoice"
                )
            }
        },
        "trial_start": now if trial_end else None,
        "_item_ids": [],
        "_pending_lines": [],
    }
    ctx.store.insert(sub)
    for price, qty, item_meta in entries:
        new_item(ctx, sub, price, qty, now, period_end, item_meta)
    lines = item_lines(ctx, sub, (now, period_end), trial=bool(trial_end))
    invoice = build_invoice(
        ctx, customer, sub, lines, "subscription_create", (now, now), emit=False
    )
    sub["latest_invoice"] = invoice["id"]
    if collection_method == "send_invoice" and not trial_end:
        sub["status"] = "active"
    if cancel_at_period_end:
        mark_canceling(sub, period_end, now)
    elif cancel_at:
        sub["cancel_at"] = cancel_at
    ctx.emit("customer.subscription.created", sub)
    ctx.emit("invoice.created", invoice)
    finalize_invoice(ctx, invoice)
    if invoice["amount_due"] == 0:
        mark_paid(ctx, invoice)
        paid = True
    elif collection_method != "charge_automatically" or payment_behavior == "default_incomplete":
        invoice["next_payment_attempt"] = None
        paid = False
    else:
        paid = attempt_payment(ctx, invoice, sub, dunning=False)
    if sub["status"] == "incomplete" and paid:
        before = ctx.render(sub)
        sub["status"] = "active"
        ctx.emit_updated("customer.subscription.updated", sub, before)
    return sub


def mark_canceling(sub: dict[str, Any], at: int, now: int) -> None:
    sub["cancel_at_period_end"] = True
    sub["cancel_at"] = at
    sub["canceled_at"] = now
    sub["cancellation_details"] = {
        **sub["cancellation_details"],
        "reason": "cancellation_requested",
    }


def current_period(ctx: Ctx, sub: dict[str, Any]) -> tuple[int, int]:
    items = items_of(ctx.store, sub)
    if not items:
        return sub["start_date"], sub["start_date"]
    return items[0]["current_period_start"], items[0]["current_period_end"]


def set_cancel_at_period_end(
    ctx: Ctx,
    sub: dict[str, Any],
    flag: bool,
    comment: str | None = None,
    feedback: str | None = None,
) -> None:
    now = ctx.now_for(sub["customer"])
    if flag:
        mark_canceling(sub, current_period(ctx, sub)[1], now)
        if comment is not None or feedback is not None:
            sub["cancellation_details"]["comment"] = comment
            sub["cancellation_details"]["feedback"] = feedback
    else:
        sub["cancel_at_period_end"] = False
        sub["cancel_at"] = None
        sub["canceled_at"] = None
        sub["cancellation_details"] = {"comment": None, "feedback": None, "reason": None}


def stop_dunning(ctx: Ctx, sub: dict[str, Any]) -> None:
    for invoice in ctx.store.all("invoice"):
        if invoice["subscription"] == sub["id"] and invoice["status"] == "open":
            ctx.store.touch(invoice)["next_payment_attempt"] = None


def cancel_now(
    ctx: Ctx,
    sub: dict[str, Any],
    *,
    reason: str = "cancellation_requested",
    comment: str | None = None,
    feedback: str | None = None,
    invoice_now: bool = False,
    prorate: bool = False,
    at: int | None = None,
) -> None:
    """End the subscription now (``customer.subscription.deleted``)."""
    now = at if at is not None else ctx.now_for(sub["customer"])
    lines: list[dict[str, Any]] = list(sub.get("_pending_lines", []))
    if prorate and sub["status"] in ("active", "past_due"):
        start, end = current_period(ctx, sub)
        for item in items_of(ctx.store, sub):
            credit = proration_line(
                ctx, sub, item, price_of(ctx, item), item["quantity"], now, start, end, credit=True
            )
            if credit is not None:
                lines.append(credit)
    if invoice_now and lines:
        sub["_pending_lines"] = []
        bill(ctx, sub, lines, "subscription_update", (now, now), dunning=False)
    sub["status"] = "canceled"
    sub["ended_at"] = now
    sub["canceled_at"] = sub["canceled_at"] or now
    details = dict(sub["cancellation_details"])
    details["reason"] = reason
    if comment is not None:
        details["comment"] = comment
    if feedback is not None:
        details["feedback"] = feedback
    sub["cancellation_details"] = details
    stop_dunning(ctx, sub)
    ctx.emit("customer.subscription.deleted", sub)


def proration_line(
    ctx: Ctx,
    sub: dict[str, Any],
    item: dict[str, Any],
    price: dict[str, Any],
    quantity: int,
    now: int,
    start: int,
    end: int,
    credit: bool,
) -> dict[str, Any] | None:
    if end <= start or now >= end:
        return None
    fraction = (end - max(now, start)) / (end - start)
    amount = round((price["unit_amount"] or 0) * quantity * fraction)
    if amount == 0:
        return None
    name = product_name(ctx, price)
    when = datetime.fromtimestamp(now, tz=UTC).strftime("%d %b %Y")
    desc = (
        f"Unused time on {quantity} \u00d7 {name} after {when}"
        if credit
        else f"Remaining time on {quantity} \u00d7 {name} after {when}"
    )
    return make_line(
        ctx,
        amount=-amount if credit else amount,
        currency=price["currency"],
        description=desc,
        price=price,
        quantity=quantity,
        period=(max(now, start), end),
        sub=sub,
        item_id=item["id"],
        proration=True,
    )


def change_items(
    ctx: Ctx,
    sub: dict[str, Any],
    changes: list[dict[str, Any]],
    proration_behavior: str,
    resolve_price: Any,
) -> None:
    """Apply ``items[]`` changes (price swaps, quantities, additions, deletions).

    ``resolve_price(price_id, param)`` returns a validated recurring price.
    """
    now = ctx.now_for(sub["customer"])
    start, end = current_period(ctx, sub)
    trialing = sub["status"] == "trialing"
    old_interval = interval_of(price_of(ctx, items_of(ctx.store, sub)[0]))
    prorations: list[dict[str, Any]] = []

    def prorate(item: dict[str, Any], price: dict[str, Any], qty: int, credit: bool) -> None:
        if trialing or proration_behavior == "none":
            return
        line = proration_line(ctx, sub, item, price, qty, now, start, end, credit)
        if line is not None:
            prorations.append(line)

    for i, change in enumerate(changes):
        item_id = change.get("id")
        if item_id:
            item = ctx.store.get("subscription_item", item_id)
            if item is None or item["subscription"] != sub["id"] or item.get("_deleted"):
                raise StripeError(
                    400,
                    f"Invalid subscription item: '{item_id}'",
                    code="resource_missing",
                    param=f"items[{i}][id]",
                )
            old_price = price_of(ctx, item)
            if change.get("deleted"):
                prorate(item, old_price, item["quantity"], credit=True)
                item["_deleted"] = True
                continue
            new_price = (
                resolve_price(change["price"], f"items[{i}][price]")
                if change.get("price")
                else old_price
            )
            qty = (
                int(change["quantity"])
                if change.get("quantity") is not None
                else int(item["quantity"])
            )
            if new_price["id"] != old_price["id"] or qty != item["quantity"]:
                prorate(item, old_price, item["quantity"], credit=True)
                item["price"] = new_price["id"]
                item["quantity"] = qty
                prorate(item, new_price, qty, credit=False)
            if change.get("metadata") is not None:
                item["metadata"] = apply_metadata(item["metadata"], change["metadata"])
        else:
            if not change.get("price"):
                raise missing(f"items[{i}][price]")
            price = resolve_price(change["price"], f"items[{i}][price]")
            if any(it["price"] == price["id"] for it in items_of(ctx.store, sub)):
                raise StripeError(
                    400,
                    "Cannot add multiple subscription items with the same price.",
                    param=f"items[{i}][price]",
                )
            qty = change.get("quantity") or 1
            item = new_item(ctx, sub, price, qty, start, end, change.get("metadata") or {})
            prorate(item, price, qty, credit=False)
    items = items_of(ctx.store, sub)
    if not items:
        raise StripeError(400, "A subscription must have at least one active item.", param="items")
    new_interval = interval_of(price_of(ctx, items[0]))
    if any(interval_of(price_of(ctx, it)) != new_interval for it in items):
        raise StripeError(
            400,
            "Currently all items of a subscription must have the same billing interval.",
            param="items",
        )
    if new_interval != old_interval and not trialing:
        # interval change: the billing cycle restarts now and is invoiced immediately
        new_end = add_interval(now, new_interval[0], new_interval[1])
        sub["billing_cycle_anchor"] = now
        for it in items:
            it["current_period_start"] = now
            it["current_period_end"] = new_end
        credits = [ln for ln in prorations if ln["amount"] < 0]
        lines = sub.pop("_pending_lines", []) + credits + item_lines(ctx, sub, (now, new_end))
        sub["_pending_lines"] = []
        bill_and_set_status(ctx, sub, lines, "subscription_update", (now, now))
        return
    if not prorations:
        return
    if proration_behavior == "always_invoice":
        lines = sub.get("_pending_lines", []) + prorations
        sub["_pending_lines"] = []
        bill_and_set_status(ctx, sub, lines, "subscription_update", (now, now))
    else:
        sub.setdefault("_pending_lines", []).extend(prorations)


def bill_and_set_status(
    ctx: Ctx, sub: dict[str, Any], lines: list[dict[str, Any]], reason: str, period: tuple[int, int]
) -> bool:
    _invoice, paid = bill(ctx, sub, lines, reason, period)
    if paid and sub["status"] in ("past_due", "incomplete", "unpaid"):
        sub["status"] = "active"
    elif (
        not paid
        and sub["status"] == "active"
        and sub["collection_method"] == "charge_automatically"
        and not sub.get("pause_collection")
    ):
        sub["status"] = "past_due"
    return paid


def restart_cycle(ctx: Ctx, sub: dict[str, Any], now: int) -> None:
    """``billing_cycle_anchor=now``: start a fresh period now and invoice it."""
    items = items_of(ctx.store, sub)
    interval, count = interval_of(price_of(ctx, items[0]))
    end = add_interval(now, interval, count)
    sub["billing_cycle_anchor"] = now
    for it in items:
        it["current_period_start"] = now
        it["current_period_end"] = end
    lines = sub.get("_pending_lines", []) + item_lines(ctx, sub, (now, end))
    sub["_pending_lines"] = []
    bill_and_set_status(ctx, sub, lines, "subscription_update", (now, now))


def end_trial_now(ctx: Ctx, sub: dict[str, Any], now: int) -> None:
    """``trial_end=now`` on update (the caller emits the update event)."""
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
