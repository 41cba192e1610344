"""The subscription operations of the API, from cleaned parameters: create (directly, not
only through Checkout), update, resume, and item changes."""

from __future__ import annotations

from typing import Any

from .. import cards
from ..context import Ctx
from ..errors import StripeError, bad_state, missing
from ..params import apply_metadata
from ..timeutil import period_containing
from .changes import change_items, restart_cycle
from .constants import DAY, ENDED
from .cycle import end_trial_now
from .items import items_of, price_of
from .lifecycle import (
    bill_and_set_status,
    cancel_now,
    create_subscription,
    current_period,
    set_cancel_at_period_end,
)
from .lines import item_lines
from .payment_methods import attached_payment_method, declined, payment_method_for
from .tax import wants_automatic_tax

Entry = tuple[dict[str, Any], int, dict[str, str]]


def resolve_price(
    ctx: Ctx, price_id: str, param: str, currency: str | None = None
) -> dict[str, Any]:
    price = ctx.store.require("price", price_id, param)
    if not price["active"]:
        raise StripeError(
            400,
            "The price specified is inactive. This field only accepts active prices.",
            param=param,
        )
    if price["type"] != "recurring":
        raise StripeError(
            400,
            "The price specified is set to `type=one_time` but this field "
            "only accepts prices with `type=recurring`.",
            param=param,
        )
    if currency and price["currency"] != currency:
        raise StripeError(
            400,
            f"The price specified uses currency {price['currency']} but "
            f"this subscription uses {currency}.",
            param=param,
        )
    return price


def subscribe(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/subscriptions``: a subscription created directly for a customer."""
    customer = ctx.store.require("customer", p["customer"], "customer")
    entries = _entries(ctx, p["items"])
    trial_end = _trial_end(ctx.now_for(customer["id"]), p, entries)
    pm_id = p.get("default_payment_method")
    if pm_id:
        pm_id = attached_payment_method(ctx, pm_id, customer["id"], "default_payment_method")["id"]
    behavior = p.get("payment_behavior") or "allow_incomplete"
    if behavior == "error_if_incomplete" and not trial_end:
        _refuse_unpayable(ctx, customer["id"], pm_id)
    return create_subscription(
        ctx,
        customer,
        entries,
        trial_end=trial_end,
        metadata=apply_metadata({}, p.get("metadata")),
        description=p.get("description"),
        default_payment_method=pm_id,
        payment_behavior=behavior,
        collection_method=p.get("collection_method") or "charge_automatically",
        days_until_due=p.get("days_until_due"),
        cancel_at_period_end=bool(p.get("cancel_at_period_end")),
        cancel_at=p.get("cancel_at"),
        trial_settings=p.get("trial_settings"),
        automatic_tax=wants_automatic_tax(p.get("automatic_tax")),
    )


def _entries(ctx: Ctx, items: list[dict[str, Any]]) -> list[Entry]:
    if not items:
        raise missing("items")
    entries: list[Entry] = []
    currency = None
    for i, item in enumerate(items):
        if not item.get("price"):
            raise missing(f"items[{i}][price]")
        price = resolve_price(ctx, item["price"], f"items[{i}][price]", currency)
        currency = price["currency"]
        entries.append((price, item.get("quantity") or 1, apply_metadata({}, item.get("metadata"))))
    return entries


def _trial_end(now: int, p: dict[str, Any], entries: list[Entry]) -> int | None:
    if p.get("trial_end") not in (None, "now"):
        trial_end = int(p["trial_end"])
        if trial_end <= now:
            raise StripeError(
                400,
                "Invalid timestamp: must be an integer Unix timestamp in the future.",
                param="trial_end",
            )
        return trial_end
    if p.get("trial_period_days"):
        return now + p["trial_period_days"] * DAY
    plan_days = entries[0][0]["recurring"].get("trial_period_days")
    if p.get("trial_from_plan") and plan_days:
        return now + plan_days * DAY
    return None


def _refuse_unpayable(ctx: Ctx, customer_id: str, pm_id: str | None) -> None:
    """``payment_behavior=error_if_incomplete``: refuse what could not be paid now."""
    charge_pm = payment_method_for(ctx, customer_id, pm_id)
    if charge_pm is None:
        raise StripeError(
            400,
            "This customer has no attached payment source or default "
            "payment method. Please consider adding a default payment "
            "method.",
            param=None,
        )
    if not cards.charge_succeeds(charge_pm["_behavior"]):
        raise declined(charge_pm["_behavior"])


def update_subscription(ctx: Ctx, sub: dict[str, Any], p: dict[str, Any]) -> None:
    """``POST /v1/subscriptions/:id``; emits ``customer.subscription.updated`` on a change."""
    before = ctx.render(sub)
    if sub["status"] in ENDED:
        extra = sorted(set(p) - {"metadata", "cancellation_details"})
        if extra:
            raise bad_state(
                "A canceled subscription can only update its cancellation_details and metadata.",
                extra[0],
            )
    _update_settings(ctx, sub, p)
    if p.get("items"):
        change_items(
            ctx,
            sub,
            p["items"],
            p.get("proration_behavior") or "create_prorations",
            lambda pid, param: resolve_price(ctx, pid, param, sub["currency"]),
            p.get("proration_date"),
        )
    _update_cancellation(ctx, sub, p)
    if "pause_collection" in p:
        _update_pause(ctx, sub, p["pause_collection"])
    if "trial_end" in p and p["trial_end"] is not None:
        _update_trial(ctx, sub, p["trial_end"])
    if p.get("billing_cycle_anchor") == "now" and sub["status"] in ("active", "past_due"):
        restart_cycle(ctx, sub, ctx.now_for(sub["customer"]))
    ctx.emit_updated("customer.subscription.updated", sub, before)


def _update_settings(ctx: Ctx, sub: dict[str, Any], p: dict[str, Any]) -> None:
    if "metadata" in p:
        sub["metadata"] = apply_metadata(sub["metadata"], p["metadata"])
    if "default_payment_method" in p:
        pm_id = p["default_payment_method"]
        if pm_id:
            pm = attached_payment_method(ctx, pm_id, sub["customer"], "default_payment_method")
            pm_id = pm["id"]
        sub["default_payment_method"] = pm_id
    for key in ("description", "collection_method", "days_until_due"):
        if key in p:
            sub[key] = p[key]
    if p.get("trial_settings"):
        sub["trial_settings"] = {"end_behavior": dict(p["trial_settings"]["end_behavior"])}
    if p.get("cancellation_details"):
        sub["cancellation_details"] = {**sub["cancellation_details"], **p["cancellation_details"]}


def _update_cancellation(ctx: Ctx, sub: dict[str, Any], p: dict[str, Any]) -> None:
    if "cancel_at_period_end" in p and p["cancel_at_period_end"] is not None:
        set_cancel_at_period_end(ctx, sub, p["cancel_at_period_end"])
    if "cancel_at" not in p:
        return
    value = p["cancel_at"]
    if value is None:
        set_cancel_at_period_end(ctx, sub, False)
        return
    now = ctx.now_for(sub["customer"])
    end = current_period(ctx, sub)[1]
    at = end if value in ("max_period_end", "min_period_end") else int(value)
    if at <= now:
        raise StripeError(400, "Invalid timestamp: must be in the future.", param="cancel_at")
    sub["cancel_at"] = at
    sub["cancel_at_period_end"] = at == end
    sub["canceled_at"] = now
    sub["cancellation_details"]["reason"] = "cancellation_requested"


def _update_pause(ctx: Ctx, sub: dict[str, Any], value: Any) -> None:
    if value in ("", None):
        was_paused = sub.get("pause_collection") is not None
        sub["pause_collection"] = None
        if was_paused:
            ctx.emit("customer.subscription.resumed", sub)
        return
    sub["pause_collection"] = {"behavior": value["behavior"], "resumes_at": value.get("resumes_at")}
    ctx.emit("customer.subscription.paused", sub)


def _update_trial(ctx: Ctx, sub: dict[str, Any], value: Any) -> None:
    now = ctx.now_for(sub["customer"])
    if value == "now":
        if sub["status"] == "trialing":
            end_trial_now(ctx, sub, now)
        return
    trial_end = int(value)
    if trial_end <= now:
        raise StripeError(
            400,
            "Invalid timestamp: must be an integer Unix timestamp in the future.",
            param="trial_end",
        )
    if sub["status"] not in ("trialing", "active"):
        raise bad_state("Only active or trialing subscriptions can get a trial.", "trial_end")
    if sub["status"] == "active":
        sub["trial_start"] = now
    sub["status"] = "trialing"
    sub["trial_end"] = trial_end
    sub["billing_cycle_anchor"] = trial_end
    for it in items_of(ctx.store, sub):
        if sub["trial_start"] == now:
            it["current_period_start"] = now
        it["current_period_end"] = trial_end
    if sub["cancel_at_period_end"]:
        sub["cancel_at"] = trial_end


def resume(ctx: Ctx, sub: dict[str, Any], anchor: str) -> None:
    """``POST /v1/subscriptions/:id/resume`` of a paused subscription."""
    if sub["status"] != "paused":
        raise bad_state(
            "Subscription must be in `paused` status to be resumed. "
            f"Current status: `{sub['status']}`."
        )
    before = ctx.render(sub)
    now = ctx.now_for(sub["customer"])
    sub["status"] = "active"
    if anchor == "now":
        restart_cycle(ctx, sub, now)
    else:
        items = items_of(ctx.store, sub)
        rec = price_of(ctx, items[0])["recurring"]
        start, end = period_containing(
            sub["billing_cycle_anchor"], rec["interval"], rec["interval_count"], now
        )
        for it in items:
            it["current_period_start"] = start
            it["current_period_end"] = end
        lines = item_lines(ctx, sub, (start, end))
        bill_and_set_status(ctx, sub, lines, "subscription_update", (now, now))
    ctx.emit("customer.subscription.resumed", sub)
    ctx.emit_updated("customer.subscription.updated", sub, before)


def change_one_item(
    ctx: Ctx, sub: dict[str, Any], change: dict[str, Any], proration: str | None
) -> None:
    """The ``/v1/subscription_items`` calls: one item added, changed or removed."""
    before = ctx.render(sub)
    if sub["status"] in ENDED:
        raise bad_state("A canceled subscription can not be changed.")
    change_items(
        ctx,
        sub,
        [change],
        proration or "create_prorations",
        lambda pid, param: resolve_price(ctx, pid, "price", sub["currency"]),
    )
    ctx.emit_updated("customer.subscription.updated", sub, before)


def cancel(ctx: Ctx, sub: dict[str, Any], p: dict[str, Any]) -> None:
    """``DELETE /v1/subscriptions/:id``: cancel now."""
    if sub["status"] in ENDED:
        raise bad_state(f"This subscription has already been canceled ({sub['id']}).")
    details = p.get("cancellation_details") or {}
    cancel_now(
        ctx,
        sub,
        reason="cancellation_requested",
        comment=details.get("comment"),
        feedback=details.get("feedback"),
        invoice_now=bool(p.get("invoice_now")),
        prorate=bool(p.get("prorate")),
    )
