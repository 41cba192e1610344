"""Subscription lifecycle: creation, trials, renewals, price changes with
prorations, cancellation, dunning outcomes."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..ids import new_id
from ..timeutil import add_interval
from .invoicing import attempt_payment, bill, build_invoice, finalize_invoice, mark_paid
from .items import items_of, new_item, price_of
from .lines import item_lines, proration_line


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
    automatic_tax: bool = False,
) -> dict[str, Any]:
    now = ctx.now_for(customer["id"])
    if trial_end is not None and trial_end <= now:
        trial_end = None
    first_price = entries[0][0]
    rec = first_price["recurring"]
    period_end = trial_end or add_interval(now, rec["interval"], rec["interval_count"])
    sub: dict[str, Any] = {
        **_subscription_defaults(automatic_tax),
        "id": new_id("sub"),
        "billing_cycle_anchor": trial_end or now,
        "collection_method": collection_method,
        "created": now,
        "currency": first_price["currency"],
        "customer": customer["id"],
        "days_until_due": days_until_due,
        "default_payment_method": default_payment_method,
        "description": description,
        "metadata": dict(metadata or {}),
        "start_date": now,
        "status": "trialing" if trial_end else "incomplete",
        "test_clock": customer.get("test_clock"),
        "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": _end(trial_settings)}},
        "trial_start": now if trial_end else None,
    }
    ctx.store.insert(sub)
    for price, qty, item_meta in entries:
        new_item(ctx, sub, price, qty, now, period_end, item_meta)
    lines = item_lines(ctx, sub, (now, period_end), trial=bool(trial_end))
    invoice = build_invoice(ctx, customer, sub, lines, "subscription_create", (now, now), False)
    sub["latest_invoice"] = invoice["id"]
    if collection_method == "send_invoice" and not trial_end:
        sub["status"] = "active"
    if cancel_at_period_end:
        mark_canceling(sub, period_end, now)
    elif cancel_at:
        sub["cancel_at"] = cancel_at
    ctx.emit("customer.subscription.created", sub)
    ctx.emit("invoice.created", invoice)
    _charge_first_invoice(ctx, sub, invoice, payment_behavior)
    return sub


_UNSET = (
    "application",
    "application_fee_percent",
    "billing_cycle_anchor_config",
    "billing_thresholds",
    "cancel_at",
    "canceled_at",
    "customer_account",
    "default_source",
    "ended_at",
    "latest_invoice",
    "managed_payments",
    "next_pending_invoice_item_invoice",
    "on_behalf_of",
    "pause_collection",
    "pending_invoice_item_interval",
    "pending_setup_intent",
    "pending_update",
    "schedule",
    "transfer_data",
)


def _end(trial_settings: dict[str, Any] | None) -> str:
    """What a trial without a payment method does at its end."""
    end = ((trial_settings or {}).get("end_behavior") or {}).get("missing_payment_method")
    return str(end or "create_invoice")


def _subscription_defaults(automatic_tax: bool = False) -> dict[str, Any]:
    return {
        **dict.fromkeys(_UNSET),
        "object": "subscription",
        "automatic_tax": {"disabled_reason": None, "enabled": automatic_tax, "liability": None},
        "billing_mode": {"type": "classic", "flexible": None},
        "billing_schedules": [],
        "cancel_at_period_end": False,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "default_tax_rates": [],
        "discounts": [],
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "livemode": False,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "_item_ids": [],
        "_pending_lines": [],
    }


def _charge_first_invoice(
    ctx: Ctx, sub: dict[str, Any], invoice: dict[str, Any], payment_behavior: str
) -> None:
    """Finalize and charge the first invoice; paid, the subscription becomes active."""
    finalize_invoice(ctx, invoice)
    if invoice["amount_due"] == 0:
        mark_paid(ctx, invoice)
        paid = True
    elif (
        sub["collection_method"] != "charge_automatically"
        or payment_behavior == "default_incomplete"
    ):
        invoice["next_payment_attempt"] = None
        paid = False
    else:
        paid = attempt_payment(ctx, invoice, sub, dunning=False)
    if sub["status"] == "incomplete" and paid:
        before = ctx.render(sub)
        sub["status"] = "active"
        ctx.emit_updated("customer.subscription.updated", sub, before)


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
