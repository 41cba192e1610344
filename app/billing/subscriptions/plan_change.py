"""Switching plan (monthly <-> yearly) and seats on the caller's own subscription, with a
preview of what it costs first.

The rules (docs/features.md):
- A change is one item update at Stripe (`proration_behavior=create_prorations`) prorated at a
  `proration_date` the preview fixes, so the change made after a preview charges what it showed.
- Same interval (seats up or down): the prorations go on the next invoice; nothing is due now.
  Another interval (monthly <-> yearly, either way): Stripe restarts the billing cycle today and
  invoices at once, the unused time credited. A yearly -> monthly downgrade is applied now too,
  not scheduled at period end: the credit for the unused year stays on the customer's balance
  and pays the next invoices, and the user gets what they picked at once (one code path, no
  subscription schedule to keep in step with webhooks).
- Asking for what the subscription already is changes nothing and calls Stripe once (the read);
  a repeated change (double click, retry) sends the same idempotency key and Stripe replays it.
- Stripe's answer is stored at once through the guarded read path (`apply_read`), so /api/me
  shows the change immediately and a late webhook with an older state cannot undo it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from app.billing.errors import Conflict, InvalidRequest
from app.billing.plans import Catalog, Plan, current_plans
from app.billing.statuses import ENDED_STATUSES
from app.billing.subscriptions.changes import changeable_subscription
from app.billing.subscriptions.reads import apply_read
from app.billing.time import ms_from_seconds, now_ms
from app.db import outside_transaction, unit_of_work
from app.models import Subscription, User, utcnow
from app.stripe.gateway import StripeDict, StripeGateway
from app.stripe.objects import first_item, object_id


@dataclass(frozen=True)
class Target:
    """What the subscription is asked to become, and what it is at Stripe now."""

    subscription: StripeDict  # as Stripe has it now
    item_id: str
    price_id: str
    quantity: int
    interval_changes: bool
    version: str  # when our row last changed: tells a repeated change from a new one

    @property
    def unchanged(self) -> bool:
        item = first_item(self.subscription)
        return object_id(item.get("price")) == self.price_id and item.get("quantity") == (
            self.quantity
        )


@dataclass(frozen=True)
class Preview:
    subscription_id: str
    price_id: str
    quantity: int
    proration_date: int  # ms, a whole second: send it back with the change
    currency: str
    amount_due_now: int
    next_invoice_amount: int
    next_invoice_at: int | None  # ms
    proration_amount: int
    lines: list[dict[str, Any]]

    def reply(self) -> dict[str, Any]:
        return {
            "subscriptionId": self.subscription_id,
            "priceId": self.price_id,
            "quantity": self.quantity,
            "prorationDate": self.proration_date,
            "currency": self.currency,
            "amountDueNow": self.amount_due_now,
            "nextInvoiceAmount": self.next_invoice_amount,
            "nextInvoiceAt": self.next_invoice_at,
            "prorationAmount": self.proration_amount,
            "lines": self.lines,
        }


def seats_allowed(plan: Plan, quantity: int) -> None:
    if not plan.min_seats <= quantity <= plan.max_seats:
        raise InvalidRequest(
            f"The {plan.id} plan takes {plan.min_seats} to {plan.max_seats} seats.",
            code="invalid_quantity",
        )


def _target(
    gateway: StripeGateway,
    user: User,
    *,
    subscription_id: str | None,
    plan: str | None,
    quantity: int | None,
) -> Target:
    if plan is None and quantity is None:
        raise InvalidRequest("Give a plan, a quantity or both.", code="change_required")
    row = changeable_subscription(user, subscription_id)
    row_id, version = row.id, row.updated_at.isoformat() if row.updated_at else ""
    config = current_app.config
    outside_transaction()
    # Stripe's copy, not ours: the item id is only there, and a change must start from what
    # Stripe bills now (our row may lag a webhook behind).
    current = gateway.retrieve_subscription(row_id)
    if current.get("status") in ENDED_STATUSES:
        with unit_of_work():
            apply_read(gateway, current, read_started=utcnow())
        raise Conflict("This subscription has already ended.", code="subscription_ended")
    item = first_item(current)
    current_price = item.get("price") or {}
    price_id = (
        Catalog.from_config(config).resolve(price_id=None, plan=plan)
        if plan is not None
        else object_id(current_price) or ""
    )
    seats = quantity if quantity is not None else int(item.get("quantity") or 1)
    seats_allowed(current_plans().paid_plan_for(price_id, config), seats)
    new_interval = _interval_of(config, price_id, plan)
    old_interval = (current_price.get("recurring") or {}).get("interval")
    return Target(
        subscription=current,
        item_id=str(item.get("id") or ""),
        price_id=price_id,
        quantity=seats,
        # During a trial Stripe neither prorates nor restarts the cycle: nothing is due now.
        interval_changes=new_interval is not None
        and new_interval != old_interval
        and current.get("status") != "trialing",
        version=version,
    )


def _interval_of(config: Any, price_id: str, plan: str | None) -> str | None:
    """The interval a price bills at, known from its alias (the only prices a plan names)."""
    if plan == "monthly" or price_id == config.get("STRIPE_PRICE_ID_MONTHLY"):
        return "month"
    if plan == "yearly" or price_id == config.get("STRIPE_PRICE_ID_YEARLY"):
        return "year"
    return None


def _proration_seconds(proration_date: int | None) -> int:
    if proration_date is None:
        return now_ms() // 1000
    if proration_date % 1000:
        raise InvalidRequest(
            "prorationDate is the value the preview returned (whole seconds, in ms).",
            code="invalid_proration_date",
        )
    seconds = proration_date // 1000
    # Stripe takes a proration date in the current period; a stale preview (older than a day)
    # is refused rather than charging for a price the user saw long ago.
    if abs(now_ms() // 1000 - seconds) > 86_400:
        raise InvalidRequest(
            "This preview is too old; preview the change again.", code="invalid_proration_date"
        )
    return seconds


def preview_change(
    gateway: StripeGateway,
    user: User,
    *,
    subscription_id: str | None,
    plan: str | None,
    quantity: int | None,
) -> Preview:
    target = _target(gateway, user, subscription_id=subscription_id, plan=plan, quantity=quantity)
    proration_date = _proration_seconds(None)
    sub = target.subscription
    if target.unchanged:
        item = first_item(sub)
        return Preview(
            subscription_id=sub["id"],
            price_id=target.price_id,
            quantity=target.quantity,
            proration_date=proration_date * 1000,
            currency=str(sub.get("currency") or "usd"),
            amount_due_now=0,
            # The regular renewal (discounts and tax left to Stripe's invoice).
            next_invoice_amount=int((item.get("price") or {}).get("unit_amount") or 0)
            * target.quantity,
            next_invoice_at=ms_from_seconds(item.get("current_period_end")),
            proration_amount=0,
            lines=[],
        )
    invoice = gateway.preview_subscription_change(
        sub["id"],
        item_id=target.item_id,
        price_id=target.price_id,
        quantity=target.quantity,
        proration_date=proration_date,
    )
    return preview_of(invoice, target, proration_date, first_item(sub))


def _is_proration(line: StripeDict) -> bool:
    details = (line.get("parent") or {}).get("subscription_item_details") or {}
    return bool(details.get("proration") or line.get("proration"))


def preview_of(
    invoice: StripeDict, target: Target, proration_date: int, item: StripeDict
) -> Preview:
    """Stripe's preview invoice as amounts a person can read. Same interval: it is the next
    invoice (at period end). Another interval: it is the invoice made now, and the next one
    is the new period's price."""
    lines = list((invoice.get("lines") or {}).get("data") or [])
    prorations = sum(int(line.get("amount") or 0) for line in lines if _is_proration(line))
    regular = [line for line in lines if not _is_proration(line)]
    amount_due = int(invoice.get("amount_due") or 0)
    if target.interval_changes:
        due_now, next_amount = amount_due, sum(int(line.get("amount") or 0) for line in regular)
        ends = [int((line.get("period") or {}).get("end") or 0) for line in regular]
        next_at = ms_from_seconds(max(ends, default=0))
    else:
        due_now, next_amount = 0, amount_due
        next_at = ms_from_seconds(item.get("current_period_end"))
    return Preview(
        subscription_id=target.subscription["id"],
        price_id=target.price_id,
        quantity=target.quantity,
        proration_date=proration_date * 1000,
        currency=str(invoice.get("currency") or "usd"),
        amount_due_now=due_now,
        next_invoice_amount=next_amount,
        next_invoice_at=next_at,
        proration_amount=prorations,
        lines=[
            {
                "description": line.get("description") or "",
                "amount": int(line.get("amount") or 0),
                "proration": _is_proration(line),
            }
            for line in lines
        ],
    )


def change_plan(
    gateway: StripeGateway,
    user: User,
    *,
    subscription_id: str | None,
    plan: str | None,
    quantity: int | None,
    proration_date: int | None,
) -> Subscription:
    """Make the change; the subscription as stored from Stripe's answer."""
    seconds = _proration_seconds(proration_date)
    target = _target(gateway, user, subscription_id=subscription_id, plan=plan, quantity=quantity)
    asked_at = utcnow()
    updated = target.subscription
    if not target.unchanged:
        updated = gateway.change_subscription_item(
            target.subscription["id"],
            item_id=target.item_id,
            price_id=target.price_id,
            quantity=target.quantity,
            proration_date=seconds,
            starting_from=target.version,
        )
    with unit_of_work():
        return apply_read(gateway, updated, read_started=asked_at)
