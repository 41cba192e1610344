"""Subscription schedules: a subscription planned in phases. The first phase starts the
subscription (now, or from an existing subscription); cancel and release end the plan.
Later phases are stored and shown but not switched to automatically."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..errors import bad_state, missing
from ..ids import new_id
from ..params import apply_metadata
from ..timeutil import add_interval
from .items import items_of, price_of
from .lifecycle import cancel_now, create_subscription, current_period
from .subscription_requests import resolve_price

KIND = "subscription_schedule"
_UNSET_PHASE = (
    "application_fee_percent billing_cycle_anchor collection_method default_payment_method "
    "description on_behalf_of transfer_data trial_end billing_thresholds"
)


def new_schedule(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    if p.get("from_subscription"):
        return _from_subscription(ctx, p["from_subscription"], p)
    if not p.get("customer"):
        raise missing("customer")
    customer = ctx.store.require("customer", p["customer"], "customer")
    if not p.get("phases"):
        raise missing("phases")
    now = ctx.now_for(customer["id"])
    start = now if p.get("start_date") in (None, "now") else int(p["start_date"])
    phases = _phases(ctx, p["phases"], start)
    schedule = _schedule(ctx, customer["id"], phases, p)
    ctx.emit("subscription_schedule.created", schedule)
    if start <= now:
        _start(ctx, schedule, customer, p["phases"][0])
    return schedule


def _phases(ctx: Ctx, requested: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    phases = []
    for i, phase in enumerate(requested):
        if not phase.get("items"):
            raise missing(f"phases[{i}][items]")
        items = []
        for j, item in enumerate(phase["items"]):
            if not item.get("price"):
                raise missing(f"phases[{i}][items][{j}][price]")
            price = resolve_price(ctx, item["price"], f"phases[{i}][items][{j}][price]")
            items.append(_phase_item(price, item))
        end = phase.get("end_date") or _end_after(items, start, phase.get("iterations") or 1, ctx)
        phases.append(_phase(items, start, end, phase))
        start = end
    return phases


def _phase_item(price: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    return {
        "billing_thresholds": None,
        "discounts": [],
        "metadata": dict(item.get("metadata") or {}),
        "plan": price["id"],
        "price": price["id"],
        "quantity": item.get("quantity") or 1,
        "tax_rates": [],
    }


def _end_after(items: list[dict[str, Any]], start: int, iterations: int, ctx: Ctx) -> int:
    price = ctx.store.require("price", items[0]["price"])
    rec = price["recurring"]
    return add_interval(start, rec["interval"], rec["interval_count"], iterations)


def _phase(
    items: list[dict[str, Any]], start: int, end: int, phase: dict[str, Any]
) -> dict[str, Any]:
    return {
        **dict.fromkeys(_UNSET_PHASE.split()),
        "add_invoice_items": [],
        "currency": "usd",
        "default_tax_rates": [],
        "discounts": [],
        "end_date": end,
        "invoice_settings": None,
        "items": items,
        "metadata": dict(phase.get("metadata") or {}),
        "proration_behavior": phase.get("proration_behavior") or "create_prorations",
        "start_date": start,
    }


def _schedule(
    ctx: Ctx, customer_id: str, phases: list[dict[str, Any]], p: dict[str, Any]
) -> dict[str, Any]:
    schedule = {
        "id": new_id("sub_sched"),
        "object": KIND,
        "application": None,
        "billing_mode": {"type": "classic", "flexible": None},
        "canceled_at": None,
        "completed_at": None,
        "created": ctx.now_for(customer_id),
        "current_phase": None,
        "customer": customer_id,
        "customer_account": None,
        "default_settings": _default_settings(),
        "end_behavior": p.get("end_behavior") or "release",
        "livemode": False,
        "metadata": apply_metadata({}, p.get("metadata")),
        "phases": phases,
        "released_at": None,
        "released_subscription": None,
        "status": "not_started",
        "subscription": None,
        "test_clock": ctx.customer_clock(customer_id),
    }
    ctx.store.insert(schedule)
    return schedule


def _default_settings() -> dict[str, Any]:
    return {
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
        "billing_cycle_anchor": "automatic",
        "billing_thresholds": None,
        "collection_method": "charge_automatically",
        "default_payment_method": None,
        "description": None,
        "invoice_settings": {"account_tax_ids": None, "days_until_due": None, "issuer": None},
        "on_behalf_of": None,
        "transfer_data": None,
    }


def _start(
    ctx: Ctx, schedule: dict[str, Any], customer: dict[str, Any], first: dict[str, Any]
) -> None:
    entries = []
    for item in schedule["phases"][0]["items"]:
        price = ctx.store.require("price", item["price"])
        entries.append((price, item["quantity"], dict(item["metadata"])))
    sub = create_subscription(ctx, customer, entries, metadata=first.get("metadata") or {})
    _attach(ctx, schedule, sub)


def _attach(ctx: Ctx, schedule: dict[str, Any], sub: dict[str, Any]) -> None:
    before = ctx.render(sub)
    sub["schedule"] = schedule["id"]
    ctx.emit_updated("customer.subscription.updated", sub, before)
    phase = schedule["phases"][0]
    schedule["subscription"] = sub["id"]
    schedule["status"] = "active"
    schedule["current_phase"] = {"start_date": phase["start_date"], "end_date": phase["end_date"]}


def _from_subscription(ctx: Ctx, sub_id: str, p: dict[str, Any]) -> dict[str, Any]:
    if p.get("phases") or p.get("customer") or p.get("start_date"):
        raise bad_state(
            "You cannot set `phases`, `customer` or `start_date` with `from_subscription`.",
            "from_subscription",
        )
    sub = ctx.store.require("subscription", sub_id, "from_subscription")
    if sub.get("schedule"):
        raise bad_state("The subscription is already attached to a schedule.", "from_subscription")
    start, end = current_period(ctx, sub)
    items = [
        _phase_item(price_of(ctx, it), {"quantity": it["quantity"], "metadata": it["metadata"]})
        for it in items_of(ctx.store, sub)
    ]
    schedule = _schedule(ctx, sub["customer"], [_phase(items, start, end, {})], p)
    ctx.emit("subscription_schedule.created", schedule)
    _attach(ctx, schedule, sub)
    return schedule


def update_schedule(ctx: Ctx, schedule: dict[str, Any], p: dict[str, Any]) -> None:
    before = ctx.render(schedule)
    if "metadata" in p:
        schedule["metadata"] = apply_metadata(schedule["metadata"], p["metadata"])
    if p.get("end_behavior"):
        schedule["end_behavior"] = p["end_behavior"]
    ctx.emit_updated("subscription_schedule.updated", schedule, before)


def _require_open(schedule: dict[str, Any], verb: str) -> None:
    if schedule["status"] not in ("not_started", "active"):
        raise bad_state(
            f"You cannot {verb} a subscription schedule whose status is {schedule['status']}."
        )


def cancel_schedule(ctx: Ctx, schedule: dict[str, Any], invoice_now: bool, prorate: bool) -> None:
    """End the plan and its subscription now."""
    _require_open(schedule, "cancel")
    sub = ctx.store.get("subscription", schedule["subscription"] or "")
    if sub is not None and sub["status"] not in ("canceled", "incomplete_expired"):
        cancel_now(ctx, sub, invoice_now=invoice_now, prorate=prorate)
    schedule["status"] = "canceled"
    schedule["canceled_at"] = ctx.now_for(schedule["customer"])
    ctx.emit("subscription_schedule.canceled", schedule)


def release_schedule(ctx: Ctx, schedule: dict[str, Any]) -> None:
    """End the plan; the subscription goes on by itself."""
    _require_open(schedule, "release")
    sub = ctx.store.get("subscription", schedule["subscription"] or "")
    if sub is not None:
        before = ctx.render(sub)
        sub["schedule"] = None
        ctx.emit_updated("customer.subscription.updated", sub, before)
    schedule["status"] = "released"
    schedule["released_at"] = ctx.now_for(schedule["customer"])
    schedule["released_subscription"] = schedule["subscription"]
    schedule["subscription"] = None
    ctx.emit("subscription_schedule.released", schedule)
