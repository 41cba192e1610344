"""Changing a subscription's items (price swaps, quantities, additions, removals) with
prorations, and restarting its billing cycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..context import Ctx
from ..errors import StripeError, missing
from ..params import apply_metadata
from ..timeutil import add_interval
from .items import interval_of, items_of, new_item, price_of
from .lifecycle import bill_and_set_status, current_period
from .lines import item_lines, proration_line

PriceResolver = Callable[[str, str], dict[str, Any]]


def change_items(
    ctx: Ctx,
    sub: dict[str, Any],
    changes: list[dict[str, Any]],
    proration_behavior: str,
    resolve_price: PriceResolver,
    proration_date: int | None = None,
) -> None:
    """Apply ``items[]`` changes (price swaps, quantities, additions, deletions).

    ``resolve_price(price_id, param)`` returns a validated recurring price; ``proration_date``
    (as Stripe's) is the instant the prorations are computed for (default: now).
    """
    change = _ItemChanges(ctx, sub, proration_behavior, resolve_price, proration_date)
    old_interval = interval_of(price_of(ctx, items_of(ctx.store, sub)[0]))
    for i, requested in enumerate(changes):
        if requested.get("id"):
            change.modify(i, requested)
        else:
            change.add(i, requested)
    new_interval = _check_items(ctx, sub)
    if new_interval != old_interval and not change.trialing:
        change.restart_for_interval(new_interval)
    else:
        change.settle_prorations()


class _ItemChanges:
    """One ``items[]`` update in progress: the period it happens in and its prorations."""

    def __init__(
        self,
        ctx: Ctx,
        sub: dict[str, Any],
        proration_behavior: str,
        resolve: PriceResolver,
        proration_date: int | None = None,
    ) -> None:
        self.ctx = ctx
        self.sub = sub
        self.behavior = proration_behavior
        self.resolve = resolve
        self.now = ctx.now_for(sub["customer"])
        self.start, self.end = current_period(ctx, sub)
        at = self.now if proration_date is None else proration_date
        self.prorate_at = min(max(at, self.start), self.end)
        self.trialing = sub["status"] == "trialing"
        self.prorations: list[dict[str, Any]] = []

    def prorate(self, item: dict[str, Any], price: dict[str, Any], qty: int, credit: bool) -> None:
        if self.trialing or self.behavior == "none":
            return
        line = proration_line(
            self.ctx, self.sub, item, price, qty, self.prorate_at, self.start, self.end, credit
        )
        if line is not None:
            self.prorations.append(line)

    def modify(self, i: int, change: dict[str, Any]) -> None:
        item = self.ctx.store.get("subscription_item", change["id"])
        if item is None or item["subscription"] != self.sub["id"] or item.get("_deleted"):
            raise StripeError(
                400,
                f"Invalid subscription item: '{change['id']}'",
                code="resource_missing",
                param=f"items[{i}][id]",
            )
        old_price = price_of(self.ctx, item)
        if change.get("deleted"):
            self.prorate(item, old_price, item["quantity"], credit=True)
            item["_deleted"] = True
            return
        new_price = (
            self.resolve(change["price"], f"items[{i}][price]")
            if change.get("price")
            else old_price
        )
        qty = int(change["quantity"] if change.get("quantity") is not None else item["quantity"])
        if new_price["id"] != old_price["id"] or qty != item["quantity"]:
            self.prorate(item, old_price, item["quantity"], credit=True)
            item["price"] = new_price["id"]
            item["quantity"] = qty
            self.prorate(item, new_price, qty, credit=False)
        if change.get("metadata") is not None:
            item["metadata"] = apply_metadata(item["metadata"], change["metadata"])

    def add(self, i: int, change: dict[str, Any]) -> None:
        if not change.get("price"):
            raise missing(f"items[{i}][price]")
        price = self.resolve(change["price"], f"items[{i}][price]")
        if any(it["price"] == price["id"] for it in items_of(self.ctx.store, self.sub)):
            raise StripeError(
                400,
                "Cannot add multiple subscription items with the same price.",
                param=f"items[{i}][price]",
            )
        qty = change.get("quantity") or 1
        meta = change.get("metadata") or {}
        item = new_item(self.ctx, self.sub, price, qty, self.start, self.end, meta)
        self.prorate(item, price, qty, credit=False)

    def restart_for_interval(self, interval: tuple[str, int]) -> None:
        """An interval change: the billing cycle restarts now and is invoiced at once."""
        now, sub = self.now, self.sub
        new_end = add_interval(now, interval[0], interval[1])
        sub["billing_cycle_anchor"] = now
        for it in items_of(self.ctx.store, sub):
            it["current_period_start"] = now
            it["current_period_end"] = new_end
        credits = [ln for ln in self.prorations if ln["amount"] < 0]
        lines = sub.pop("_pending_lines", []) + credits + item_lines(self.ctx, sub, (now, new_end))
        sub["_pending_lines"] = []
        bill_and_set_status(self.ctx, sub, lines, "subscription_update", (now, now))

    def settle_prorations(self) -> None:
        """Invoice the prorations now (``always_invoice``) or leave them for the next invoice."""
        if not self.prorations:
            return
        if self.behavior == "always_invoice":
            lines = self.sub.get("_pending_lines", []) + self.prorations
            self.sub["_pending_lines"] = []
            period = (self.now, self.now)
            bill_and_set_status(self.ctx, self.sub, lines, "subscription_update", period)
        else:
            self.sub.setdefault("_pending_lines", []).extend(self.prorations)


def _check_items(ctx: Ctx, sub: dict[str, Any]) -> tuple[str, int]:
    """At least one item, all on one interval; returns that interval."""
    items = items_of(ctx.store, sub)
    if not items:
        raise StripeError(400, "A subscription must have at least one active item.", param="items")
    interval = interval_of(price_of(ctx, items[0]))
    if any(interval_of(price_of(ctx, it)) != interval for it in items):
        raise StripeError(
            400,
            "Currently all items of a subscription must have the same billing interval.",
            param="items",
        )
    return interval


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
