"""The billing engine: subscriptions, their items and invoices, payment
attempts, renewals, trials, dunning retries, cancellation, prorations, and
running everything that falls due (wall time or a test clock)."""

from __future__ import annotations

from typing import Any

from .context import Ctx
from .ids import new_id
from .resources.catalog import plan_from_price
from .resources.payments import (
    confirm_payment_intent,
    new_payment_intent,
    payment_method_for,
)
from .store import Store, renderer, strip_private
from .timeutil import add_interval, next_period_end
from .wire import list_object

DAY = 86400
HOUR = 3600
TRIAL_WILL_END_BEFORE = 3 * DAY
INCOMPLETE_EXPIRES_AFTER = 23 * HOUR
# Dunning: after the first failed renewal charge, retry at these offsets (days
# after the first failure); when the last retry fails, the subscription becomes
# canceled or unpaid (``failed_payment_outcome``).
PAYMENT_RETRY_DAYS = [3, 5, 7]

ENDED = ("canceled", "incomplete_expired")

# ------------------------------------------------------------- rendering


@renderer("subscription_item")
def render_item(store: Store, item: dict[str, Any]) -> dict[str, Any]:
    out = strip_private(item)
    price = store.get("price", item["price"])
    if price is not None:
        out["price"] = strip_private(price)
        out["plan"] = plan_from_price(price)
    return out


def items_of(store: Store, sub: dict[str, Any]) -> list[dict[str, Any]]:
    items = [store.get("subscription_item", i) for i in sub["_item_ids"]]
    return [i for i in items if i is not None and not i.get("_deleted")]


@renderer("subscription")
def render_subscription(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    out = strip_private(sub)
    out["items"] = list_object([render_item(store, i) for i in items_of(store, sub)],
                               f"/v1/subscription_items?subscription={sub['id']}")
    return out


@renderer("invoice")
def render_invoice(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    return strip_private(invoice)


def invoice_payments(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    """The includable ``payments`` list of an invoice."""
    data = [strip_private(p) for p in store.all("invoice_payment")
            if p["invoice"] == invoice["id"]]
    return list_object(data, f"/v1/invoice_payments?invoice={invoice['id']}")


# ------------------------------------------------------------------ items


def price_of(ctx: Ctx, item: dict[str, Any]) -> dict[str, Any]:
    price = ctx.store.get("price", item["price"])
    assert price is not None
    return price


def new_item(ctx: Ctx, sub: dict[str, Any], price: dict[str, Any], quantity: int,
             start: int, end: int, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    item = {
        "id": new_id("si"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": start,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": dict(metadata or {}),
        "price": price["id"],
        "quantity": quantity,
        "subscription": sub["id"],
        "tax_rates": [],
    }
    ctx.store.insert(item)
    sub["_item_ids"].append(item["id"])
    return item


def money(amount: int, currency: str) -> str:
    sign = "-" if amount < 0 else ""
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency, "")
    value = f"{abs(amount) / 100:.2f}"
    return f"{sign}{symbol}{value}" if symbol else f"{sign}{value} {currency.upper()}"


def product_name(ctx: Ctx, price: dict[str, Any]) -> str:
    product = ctx.store.get("product", price["product"])
    return product["name"] if product else price["product"]


def item_description(ctx: Ctx, price: dict[str, Any], quantity: int) -> str:
    rec = price.get("recurring") or {}
    every = rec.get("interval", "")
    if rec.get("interval_count", 1) > 1:
        every = f"{rec['interval_count']} {every}s"
    amount = money(price["unit_amount"] or 0, price["currency"])
    return f"{quantity} \u00d7 {product_name(ctx, price)} (at {amount} / {every})"


# --------------------------------------------------------------- invoices


def make_line(ctx: Ctx, *, amount: int, currency: str, description: str,
              price: dict[str, Any], quantity: int, period: tuple[int, int],
              sub: dict[str, Any] | None, item_id: str | None,
              proration: bool = False) -> dict[str, Any]:
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": description,
        "discount_amounts": [],
        "discountable": not proration,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "parent": {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"] if sub else None,
                "subscription_item": item_id,
            },
        },
        "period": {"start": period[0], "end": period[1]},
        "pretax_credit_amounts": [],
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price["id"], "product": price["product"]},
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "subscription": sub["id"] if sub else None,
        "subtotal": amount,
        "taxes": [],
    }


def item_lines(ctx: Ctx, sub: dict[str, Any], period: tuple[int, int],
               trial: bool = False) -> list[dict[str, Any]]:
    lines = []
    for item in items_of(ctx.store, sub):
        price = price_of(ctx, item)
        qty = item["quantity"]
        if trial:
            amount = 0
            desc = f"Trial period for {product_name(ctx, price)}"
        else:
            amount = (price["unit_amount"] or 0) * qty
            desc = item_description(ctx, price, qty)
        lines.append(make_line(ctx, amount=amount, currency=price["currency"], description=desc,
                               price=price, quantity=qty, period=period, sub=sub,
                               item_id=item["id"]))
    return lines


def build_invoice(ctx: Ctx, customer: dict[str, Any], sub: dict[str, Any] | None,
                  lines: list[dict[str, Any]], billing_reason: str,
                  period: tuple[int, int], emit: bool = True) -> dict[str, Any]:
    """A draft invoice (``invoice.created`` unless ``emit`` is false)."""
    now = ctx.now_for(customer["id"])
    currency = lines[0]["currency"] if lines else (sub or {}).get("currency") or "usd"
    invoice_id = new_id("in")
    for line in lines:
        line["invoice"] = invoice_id
    total = sum(line["amount"] for line in lines)
    collection = (sub or {}).get("collection_method") or "charge_automatically"
    invoice: dict[str, Any] = {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Stripe Sandbox",
        "account_tax_ids": None,
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": total,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None,
                          "provider": None, "status": None},
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": collection,
        "created": now,
        "currency": currency,
        "custom_fields": None,
        "customer": customer["id"],
        "customer_account": None,
        "customer_address": customer.get("address"),
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "customer_phone": customer.get("phone"),
        "customer_shipping": customer.get("shipping"),
        "customer_tax_exempt": customer.get("tax_exempt", "none"),
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": (sub or {}).get("description"),
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": list_object(lines, f"/v1/invoices/{invoice_id}/lines"),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(sub["metadata"]) if sub else None,
                "subscription": sub["id"] if sub else None,
            },
        } if sub else None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "period_end": period[1],
        "period_start": period[0],
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                               "paid_at": None, "voided_at": None},
        "subscription": sub["id"] if sub else None,
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "test_clock": customer.get("test_clock"),
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }
    ctx.store.insert(invoice)
    if emit:
        ctx.emit("invoice.created", invoice)
    return invoice


def finalize_invoice(ctx: Ctx, invoice: dict[str, Any]) -> None:
    customer = ctx.store.get("customer", invoice["customer"])
    assert customer is not None
    now = ctx.now_for(customer["id"])
    seq = customer["next_invoice_sequence"]
    customer["next_invoice_sequence"] = seq + 1
    invoice["number"] = f"{customer['invoice_prefix']}-{seq:04d}"
    starting = customer.get("balance") or 0
    due = invoice["total"] + starting
    invoice["starting_balance"] = starting
    invoice["amount_due"] = max(0, due)
    invoice["amount_remaining"] = invoice["amount_due"]
    invoice["ending_balance"] = min(0, due)
    customer["balance"] = min(0, due)
    invoice["status"] = "open"
    invoice["effective_at"] = now
    invoice["status_transitions"]["finalized_at"] = now
    invoice["webhooks_delivered_at"] = now
    if ctx.base_url:
        invoice["hosted_invoice_url"] = ctx.url(f"/invoice/{invoice['id']}")
        invoice["invoice_pdf"] = ctx.url(f"/invoice/{invoice['id']}/pdf")
    if invoice["collection_method"] == "send_invoice":
        invoice["due_date"] = now + 30 * DAY
    if invoice["amount_due"] > 0:
        pi = new_payment_intent(ctx, amount=invoice["amount_due"], currency=invoice["currency"],
                                customer_id=customer["id"],
                                description=("Subscription creation"
                                             if invoice["billing_reason"] == "subscription_create"
                                             else "Subscription update"))
        invoice["_payment_intent"] = pi["id"]
        ctx.store.insert({
            "id": new_id("inpay"),
            "object": "invoice_payment",
            "amount_paid": None,
            "amount_requested": invoice["amount_due"],
            "created": now,
            "currency": invoice["currency"],
            "invoice": invoice["id"],
            "is_default": True,
            "livemode": False,
            "payment": {"type": "payment_intent", "payment_intent": pi["id"]},
            "status": "open",
            "status_transitions": {"canceled_at": None, "paid_at": None},
        })
        if invoice["collection_method"] == "charge_automatically":
            invoice["next_payment_attempt"] = now
    ctx.emit("invoice.finalized", invoice)


def _invoice_payment(ctx: Ctx, invoice: dict[str, Any]) -> dict[str, Any] | None:
    for p in ctx.store.all("invoice_payment"):
        if p["invoice"] == invoice["id"]:
            return p
    return None


def mark_paid(ctx: Ctx, invoice: dict[str, Any]) -> None:
    now = ctx.now_for(invoice["customer"])
    invoice["status"] = "paid"
    invoice["amount_paid"] = invoice["amount_due"]
    invoice["amount_remaining"] = 0
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"]["paid_at"] = now
    payment = _invoice_payment(ctx, invoice)
    if payment is not None:
        payment["status"] = "paid"
        payment["amount_paid"] = invoice["amount_due"]
        payment["status_transitions"]["paid_at"] = now
    ctx.emit("invoice.paid", invoice)
    ctx.emit("invoice.payment_succeeded", invoice)


def attempt_payment(ctx: Ctx, invoice: dict[str, Any], sub: dict[str, Any] | None,
                    dunning: bool = True, payment_method: str | None = None) -> bool:
    """Charge an open invoice. Failures schedule dunning retries when ``dunning``."""
    if invoice["status"] != "open":
        return invoice["status"] == "paid"
    if invoice["amount_due"] == 0:
        mark_paid(ctx, invoice)
        return True
    preferred = payment_method or (sub or {}).get("default_payment_method")
    pm = payment_method_for(ctx, invoice["customer"], preferred)
    pi = ctx.store.get("payment_intent", invoice.get("_payment_intent", ""))
    if pi is None:
        pi = new_payment_intent(ctx, amount=invoice["amount_due"], currency=invoice["currency"],
                                customer_id=invoice["customer"])
        invoice["_payment_intent"] = pi["id"]
    invoice["attempt_count"] += 1
    invoice["attempted"] = True
    if confirm_payment_intent(ctx, pi, pm):
        mark_paid(ctx, invoice)
        return True
    now = ctx.now_for(invoice["customer"])
    next_attempt = None
    if dunning:
        first = invoice.setdefault("_first_failure", now)
        retries_done = invoice["attempt_count"] - 1
        if retries_done < len(PAYMENT_RETRY_DAYS):
            next_attempt = first + PAYMENT_RETRY_DAYS[retries_done] * DAY
    invoice["next_payment_attempt"] = next_attempt
    ctx.emit("invoice.payment_failed", invoice)
    return False


def void_invoice(ctx: Ctx, invoice: dict[str, Any]) -> None:
    invoice["status"] = "void"
    invoice["next_payment_attempt"] = None
    invoice["amount_remaining"] = 0
    invoice["status_transitions"]["voided_at"] = ctx.now_for(invoice["customer"])
    pi = ctx.store.get("payment_intent", invoice.get("_payment_intent", ""))
    if pi is not None and pi["status"] != "succeeded":
        pi["status"] = "canceled"
        pi["canceled_at"] = ctx.now_for(invoice["customer"])
        pi["cancellation_reason"] = "void_invoice"
        ctx.emit("payment_intent.canceled", pi)
    ctx.emit("invoice.voided", invoice)


def mark_uncollectible(ctx: Ctx, invoice: dict[str, Any]) -> None:
    invoice["status"] = "uncollectible"
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"]["marked_uncollectible_at"] = ctx.now_for(invoice["customer"])
    ctx.emit("invoice.marked_uncollectible", invoice)


def bill(ctx: Ctx, sub: dict[str, Any], lines: list[dict[str, Any]], billing_reason: str,
         period: tuple[int, int], dunning: bool = True) -> tuple[dict[str, Any], bool]:
    """Invoice ``lines`` for ``sub``, finalize and (unless paused) charge. -> (invoice, paid)."""
    customer = ctx.store.get("customer", sub["customer"])
    assert customer is not None
    invoice = build_invoice(ctx, customer, sub, lines, billing_reason, period)
    sub["latest_invoice"] = invoice["id"]
    pause = sub.get("pause_collection")
    if pause and pause.get("behavior") == "keep_as_draft":
        return invoice, False
    finalize_invoice(ctx, invoice)
    if pause:
        if pause.get("behavior") == "void":
            void_invoice(ctx, invoice)
        else:
            mark_uncollectible(ctx, invoice)
        return invoice, False
    if invoice["amount_due"] == 0:
        mark_paid(ctx, invoice)
        return invoice, True
    if sub["collection_method"] != "charge_automatically" or sub["status"] == "unpaid":
        invoice["next_payment_attempt"] = None
        return invoice, False
    return invoice, attempt_payment(ctx, invoice, sub, dunning=dunning)


# ------------------------------------------------------------ subscriptions


def create_subscription(ctx: Ctx, customer: dict[str, Any],
                        entries: list[tuple[dict[str, Any], int, dict[str, str]]], *,
                        trial_end: int | None = None,
                        metadata: dict[str, str] | None = None,
                        description: str | None = None,
                        default_payment_method: str | None = None,
                        payment_behavior: str = "allow_incomplete",
                        collection_method: str = "charge_automatically",
                        days_until_due: int | None = None,
                        cancel_at_period_end: bool = False,
                        cancel_at: int | None = None,
                        trial_settings: dict[str, Any] | None = None) -> dict[str, Any]:
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
        "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                             "save_default_payment_method": "off"},
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "trialing" if trial_end else "incomplete",
        "test_clock": customer.get("test_clock"),
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": (
            ((trial_settings or {}).get("end_behavior") or {}).get("missing_payment_method")
            or "create_invoice")}},
        "trial_start": now if trial_end else None,
        "_item_ids": [],
        "_pending_lines": [],
    }
    ctx.store.insert(sub)
    for price, qty, item_meta in entries:
        new_item(ctx, sub, price, qty, now, period_end, item_meta)
    lines = item_lines(ctx, sub, (now, period_end), trial=bool(trial_end))
    invoice = build_invoice(ctx, customer, sub, lines, "subscription_create", (now, now),
                            emit=False)
    sub["latest_invoice"] = invoice["id"]
    if collection_method == "send_invoice" and not trial_end:
        sub["status"] = "active"
    if cancel_at_period_end:
        _set_cancel(sub, period_end, now)
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


def _set_cancel(sub: dict[str, Any], at: int, now: int) -> None:
    sub["cancel_at_period_end"] = True
    sub["cancel_at"] = at
    sub["canceled_at"] = now
    sub["cancellation_details"] = {**sub["cancellation_details"],
                                   "reason": "cancellation_requested"}


def current_period(ctx: Ctx, sub: dict[str, Any]) -> tuple[int, int]:
    items = items_of(ctx.store, sub)
    if not items:
        return sub["start_date"], sub["start_date"]
    return items[0]["current_period_start"], items[0]["current_period_end"]


def set_cancel_at_period_end(ctx: Ctx, sub: dict[str, Any], flag: bool,
                             comment: str | None = None, feedback: str | None = None) -> None:
    now = ctx.now_for(sub["customer"])
    if flag:
        _set_cancel(sub, current_period(ctx, sub)[1], now)
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
            invoice["next_payment_attempt"] = None


def cancel_now(ctx: Ctx, sub: dict[str, Any], *, reason: str = "cancellation_requested",
               comment: str | None = None, feedback: str | None = None,
               invoice_now: bool = False, prorate: bool = False,
               at: int | None = None) -> None:
    """End the subscription now (``customer.subscription.deleted``)."""
    now = at if at is not None else ctx.now_for(sub["customer"])
    lines: list[dict[str, Any]] = list(sub.get("_pending_lines", []))
    if prorate and sub["status"] in ("active", "past_due"):
        start, end = current_period(ctx, sub)
        for item in items_of(ctx.store, sub):
            credit = _proration(ctx, sub, item, price_of(ctx, item), item["quantity"], now,
                                start, end, credit=True)
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


def _proration(ctx: Ctx, sub: dict[str, Any], item: dict[str, Any], price: dict[str, Any],
               quantity: int, now: int, start: int, end: int,
               credit: bool) -> dict[str, Any] | None:
    if end <= start or now >= end:
        return None
    fraction = (end - max(now, start)) / (end - start)
    amount = round((price["unit_amount"] or 0) * quantity * fraction)
    if amount == 0:
        return None
    name = product_name(ctx, price)
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(now, tz=UTC).strftime("%d %b %Y")
    desc = (f"Unused time on {quantity} \u00d7 {name} after {when}" if credit
            else f"Remaining time on {quantity} \u00d7 {name} after {when}")
    return make_line(ctx, amount=-amount if credit else amount, currency=price["currency"],
                     description=desc, price=price, quantity=quantity,
                     period=(max(now, start), end), sub=sub, item_id=item["id"],
                     proration=True)


def _interval(price: dict[str, Any]) -> tuple[str, int]:
    rec = price["recurring"]
    return rec["interval"], rec["interval_count"]


def change_items(ctx: Ctx, sub: dict[str, Any],
                 changes: list[dict[str, Any]], proration_behavior: str,
                 resolve_price: Any) -> None:
    """Apply ``items[]`` changes (price swaps, quantities, additions, deletions).

    ``resolve_price(price_id, param)`` returns a validated recurring price.
    """
    now = ctx.now_for(sub["customer"])
    start, end = current_period(ctx, sub)
    trialing = sub["status"] == "trialing"
    old_interval = _interval(price_of(ctx, items_of(ctx.store, sub)[0]))
    prorations: list[dict[str, Any]] = []

    def prorate(item: dict[str, Any], price: dict[str, Any], qty: int, credit: bool) -> None:
        if trialing or proration_behavior == "none":
            return
        line = _proration(ctx, sub, item, price, qty, now, start, end, credit)
        if line is not None:
            prorations.append(line)

    from .wire import StripeError

    for i, change in enumerate(changes):
        item_id = change.get("id")
        if item_id:
            item = ctx.store.get("subscription_item", item_id)
            if item is None or item["subscription"] != sub["id"] or item.get("_deleted"):
                raise StripeError(400, f"Invalid subscription item: '{item_id}'",
                                  code="resource_missing", param=f"items[{i}][id]")
            old_price = price_of(ctx, item)
            if change.get("deleted"):
                prorate(item, old_price, item["quantity"], credit=True)
                item["_deleted"] = True
                continue
            new_price = (resolve_price(change["price"], f"items[{i}][price]")
                         if change.get("price") else old_price)
            qty = int(change["quantity"]) if change.get("quantity") is not None \
                else int(item["quantity"])
            if new_price["id"] != old_price["id"] or qty != item["quantity"]:
                prorate(item, old_price, item["quantity"], credit=True)
                item["price"] = new_price["id"]
                item["quantity"] = qty
                prorate(item, new_price, qty, credit=False)
            if change.get("metadata") is not None:
                from .wire import apply_metadata

                item["metadata"] = apply_metadata(item["metadata"], change["metadata"])
        else:
            if not change.get("price"):
                from .wire import missing

                raise missing(f"items[{i}][price]")
            price = resolve_price(change["price"], f"items[{i}][price]")
            if any(it["price"] == price["id"] for it in items_of(ctx.store, sub)):
                raise StripeError(400, "Cannot add multiple subscription items with the same "
                                       "price.", param=f"items[{i}][price]")
            qty = change.get("quantity") or 1
            item = new_item(ctx, sub, price, qty, start, end, change.get("metadata") or {})
            prorate(item, price, qty, credit=False)
    items = items_of(ctx.store, sub)
    if not items:
        raise StripeError(400, "A subscription must have at least one active item.",
                          param="items")
    new_interval = _interval(price_of(ctx, items[0]))
    if any(_interval(price_of(ctx, it)) != new_interval for it in items):
        raise StripeError(400, "Currently all items of a subscription must have the same "
                               "billing interval.", param="items")
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
        _bill_and_set_status(ctx, sub, lines, "subscription_update", (now, now))
        return
    if not prorations:
        return
    if proration_behavior == "always_invoice":
        lines = sub.get("_pending_lines", []) + prorations
        sub["_pending_lines"] = []
        _bill_and_set_status(ctx, sub, lines, "subscription_update", (now, now))
    else:
        sub.setdefault("_pending_lines", []).extend(prorations)


def _bill_and_set_status(ctx: Ctx, sub: dict[str, Any], lines: list[dict[str, Any]],
                         reason: str, period: tuple[int, int]) -> bool:
    _invoice, paid = bill(ctx, sub, lines, reason, period)
    if paid and sub["status"] in ("past_due", "incomplete", "unpaid"):
        sub["status"] = "active"
    elif not paid and sub["status"] == "active" and sub["collection_method"] == \
            "charge_automatically" and not sub.get("pause_collection"):
        sub["status"] = "past_due"
    return paid


def restart_cycle(ctx: Ctx, sub: dict[str, Any], now: int) -> None:
    """``billing_cycle_anchor=now``: start a fresh period now and invoice it."""
    items = items_of(ctx.store, sub)
    interval, count = _interval(price_of(ctx, items[0]))
    end = add_interval(now, interval, count)
    sub["billing_cycle_anchor"] = now
    for it in items:
        it["current_period_start"] = now
        it["current_period_end"] = end
    lines = sub.get("_pending_lines", []) + item_lines(ctx, sub, (now, end))
    sub["_pending_lines"] = []
    _bill_and_set_status(ctx, sub, lines, "subscription_update", (now, now))


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
    interval, count = _interval(price_of(ctx, items[0]))
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
    if not paid and sub["collection_method"] == "charge_automatically" \
            and not sub.get("pause_collection"):
        sub["status"] = "past_due"
    if emit_update:
        ctx.emit_updated("customer.subscription.updated", sub, before)


def renew(ctx: Ctx, sub: dict[str, Any], at: int) -> None:
    """The current period ended at ``at``: start the next one and invoice it."""
    before = ctx.render(sub)
    items = items_of(ctx.store, sub)
    old_start, old_end = current_period(ctx, sub)
    interval, count = _interval(price_of(ctx, items[0]))
    new_end = next_period_end(sub["billing_cycle_anchor"], interval, count, old_end)
    for it in items:
        it["current_period_start"] = old_end
        it["current_period_end"] = new_end
    lines = sub.get("_pending_lines", []) + item_lines(ctx, sub, (old_end, new_end))
    sub["_pending_lines"] = []
    _invoice, paid = bill(ctx, sub, lines, "subscription_cycle", (old_start, old_end))
    if paid and sub["status"] == "past_due" and not _has_unpaid(ctx, sub):
        sub["status"] = "active"
    elif not paid and sub["status"] == "active" and sub["collection_method"] == \
            "charge_automatically" and not sub.get("pause_collection"):
        sub["status"] = "past_due"
    ctx.emit_updated("customer.subscription.updated", sub, before)


def _has_unpaid(ctx: Ctx, sub: dict[str, Any]) -> bool:
    return any(inv["subscription"] == sub["id"] and inv["status"] == "open"
               and inv["amount_remaining"] > 0 for inv in ctx.store.all("invoice"))


def retry_invoice(ctx: Ctx, invoice: dict[str, Any], at: int) -> None:
    sub = ctx.store.get("subscription", invoice["subscription"] or "")
    before = ctx.render(sub) if sub else None
    paid = attempt_payment(ctx, invoice, sub, dunning=True)
    if sub is None or before is None:
        return
    if paid:
        if sub["status"] in ("past_due", "unpaid") and not _has_unpaid(ctx, sub):
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


# ---------------------------------------------------------------- due work


def due_actions(ctx: Ctx, sub: dict[str, Any]) -> list[tuple[int, int, str, str]]:
    """``(time, priority, kind, target_id)`` of everything scheduled for a subscription."""
    status = sub["status"]
    out: list[tuple[int, int, str, str]] = []
    if status in ENDED or status == "paused":
        return out
    if status == "incomplete":
        out.append((sub["created"] + INCOMPLETE_EXPIRES_AFTER, 0, "expire_incomplete",
                    sub["id"]))
        return out
    if status == "trialing" and sub["trial_end"]:
        if sub.get("cancel_at") is not None and sub["cancel_at"] < sub["trial_end"]:
            out.append((sub["cancel_at"], 0, "cancel", sub["id"]))
        if not sub.get("_trial_will_end_sent") and \
                sub["trial_end"] - TRIAL_WILL_END_BEFORE > sub["created"]:
            out.append((sub["trial_end"] - TRIAL_WILL_END_BEFORE, 3, "trial_will_end", sub["id"]))
        out.append((sub["trial_end"], 2, "trial_end", sub["id"]))
        return out
    pause = sub.get("pause_collection")
    if pause and pause.get("resumes_at"):
        out.append((pause["resumes_at"], 1, "unpause", sub["id"]))
    _start, end = current_period(ctx, sub)
    if sub.get("cancel_at") is not None and sub["cancel_at"] <= end:
        out.append((sub["cancel_at"], 0, "cancel", sub["id"]))
    else:
        out.append((end, 2, "renew", sub["id"]))
    for invoice in ctx.store.all("invoice"):
        if invoice["subscription"] == sub["id"] and invoice["status"] == "open" \
                and invoice["next_payment_attempt"] is not None \
                and invoice["attempt_count"] > 0:
            out.append((invoice["next_payment_attempt"], 4, "retry", invoice["id"]))
    return out


def run_due(ctx: Ctx, subs: list[dict[str, Any]], until: int,
            clock: dict[str, Any] | None = None) -> None:
    """Perform every scheduled action up to ``until`` in time order."""
    for _ in range(10000):
        actions = [a for s in subs for a in due_actions(ctx, s) if a[0] <= until]
        if not actions:
            return
        at, _prio, kind, target = min(actions)
        if clock is not None:
            clock["frozen_time"] = max(clock["frozen_time"], at)
        if kind == "retry":
            invoice = ctx.store.get("invoice", target)
            assert invoice is not None
            retry_invoice(ctx, invoice, at)
            continue
        sub = ctx.store.get("subscription", target)
        assert sub is not None
        if kind == "expire_incomplete":
            expire_incomplete(ctx, sub, at)
        elif kind == "trial_will_end":
            sub["_trial_will_end_sent"] = True
            ctx.emit("customer.subscription.trial_will_end", sub)
        elif kind == "trial_end":
            end_trial(ctx, sub, at)
        elif kind == "cancel":
            cancel_now(ctx, sub, at=at)
        elif kind == "renew":
            renew(ctx, sub, at)
        elif kind == "unpause":
            before = ctx.render(sub)
            sub["pause_collection"] = None
            ctx.emit_updated("customer.subscription.updated", sub, before)
            ctx.emit("customer.subscription.resumed", sub)


def advance_clock(ctx: Ctx, clock: dict[str, Any], target: int) -> None:
    clock["status"] = "advancing"
    ctx.emit("test_helpers.test_clock.advancing", clock)
    subs = [s for s in ctx.store.all("subscription") if s.get("test_clock") == clock["id"]]
    from .resources.checkout import expire_due_sessions

    run_due(ctx, subs, target, clock)
    clock["frozen_time"] = target
    expire_due_sessions(ctx, clock_id=clock["id"])
    clock["status"] = "ready"
    ctx.emit("test_helpers.test_clock.ready", clock)


def tick_wall(ctx: Ctx, now: int) -> None:
    """Run what fell due in wall time for objects not on a test clock."""
    subs = [s for s in ctx.store.all("subscription")
            if not s.get("test_clock") and s["status"] not in ENDED]
    if subs:
        run_due(ctx, subs, now)
    from .resources.checkout import expire_due_sessions

    expire_due_sessions(ctx, clock_id=None)
