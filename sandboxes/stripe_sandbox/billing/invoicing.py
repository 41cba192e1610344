"""Invoices: lines, drafting, finalization, payment attempts with dunning,
voiding."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..ids import new_id
from ..wire import list_object
from .constants import DAY, PAYMENT_RETRY_DAYS
from .lines import invoice_item_line, pending_items
from .payment_intents import confirm_payment_intent, new_payment_intent
from .payment_methods import payment_method_for
from .tax import apply_tax


def build_invoice(
    ctx: Ctx,
    customer: dict[str, Any],
    sub: dict[str, Any] | None,
    lines: list[dict[str, Any]],
    billing_reason: str,
    period: tuple[int, int],
    emit: bool = True,
) -> dict[str, Any]:
    """A draft invoice (``invoice.created`` unless ``emit`` is false)."""
    now = ctx.now_for(customer["id"])
    currency = lines[0]["currency"] if lines else (sub or {}).get("currency") or "usd"
    invoice_id = new_id("in")
    for line in lines:
        line["invoice"] = invoice_id
    total = sum(line["amount"] for line in lines)
    collection = (sub or {}).get("collection_method") or "charge_automatically"
    invoice: dict[str, Any] = {
        **_unset_invoice_fields(),
        **_customer_fields(customer),
        **_amounts(total),
        "id": invoice_id,
        "object": "invoice",
        "billing_reason": billing_reason,
        "collection_method": collection,
        "created": now,
        "currency": currency,
        "description": (sub or {}).get("description"),
        "lines": list_object(lines, f"/v1/invoices/{invoice_id}/lines"),
        "parent": _parent(sub),
        "period_end": period[1],
        "period_start": period[0],
        "subscription": sub["id"] if sub else None,
        "test_clock": customer.get("test_clock"),
    }
    apply_tax(invoice, customer, sub)
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
        pi = new_payment_intent(
            ctx,
            amount=invoice["amount_due"],
            currency=invoice["currency"],
            customer_id=customer["id"],
            description=(
                "Subscription creation"
                if invoice["billing_reason"] == "subscription_create"
                else "Subscription update"
            ),
        )
        invoice["_payment_intent"] = pi["id"]
        ctx.store.insert(
            {
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
            }
        )
        if invoice["collection_method"] == "charge_automatically":
            invoice["next_payment_attempt"] = now
    ctx.emit("invoice.finalized", invoice)


def invoice_payment_of(ctx: Ctx, invoice: dict[str, Any]) -> dict[str, Any] | None:
    for p in ctx.store.all("invoice_payment"):
        if p["invoice"] == invoice["id"]:
            return ctx.store.touch(p)
    return None


def mark_paid(ctx: Ctx, invoice: dict[str, Any]) -> None:
    now = ctx.now_for(invoice["customer"])
    invoice["status"] = "paid"
    invoice["amount_paid"] = invoice["amount_due"]
    invoice["amount_remaining"] = 0
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"]["paid_at"] = now
    payment = invoice_payment_of(ctx, invoice)
    if payment is not None:
        payment["status"] = "paid"
        payment["amount_paid"] = invoice["amount_due"]
        payment["status_transitions"]["paid_at"] = now
    ctx.emit("invoice.paid", invoice)
    ctx.emit("invoice.payment_succeeded", invoice)


def attempt_payment(
    ctx: Ctx,
    invoice: dict[str, Any],
    sub: dict[str, Any] | None,
    dunning: bool = True,
    payment_method: str | None = None,
) -> bool:
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
        pi = new_payment_intent(
            ctx,
            amount=invoice["amount_due"],
            currency=invoice["currency"],
            customer_id=invoice["customer"],
        )
        invoice["_payment_intent"] = pi["id"]
    invoice["attempt_count"] += 1
    invoice["attempted"] = True
    # the first invoice of a subscription is paid with the customer present (on-session)
    off_session = invoice["billing_reason"] != "subscription_create"
    if confirm_payment_intent(ctx, pi, pm, off_session=off_session):
        mark_paid(ctx, invoice)
        return True
    if pi["status"] == "requires_action":
        invoice["next_payment_attempt"] = None
        ctx.emit("invoice.payment_action_required", invoice)
        return False
    _schedule_retry(ctx, invoice, dunning)
    ctx.emit("invoice.payment_failed", invoice)
    return False


def _schedule_retry(ctx: Ctx, invoice: dict[str, Any], dunning: bool) -> None:
    now = ctx.now_for(invoice["customer"])
    next_attempt = None
    if dunning:
        first = invoice.setdefault("_first_failure", now)
        retries_done = invoice["attempt_count"] - 1
        if retries_done < len(PAYMENT_RETRY_DAYS):
            next_attempt = first + PAYMENT_RETRY_DAYS[retries_done] * DAY
    invoice["next_payment_attempt"] = next_attempt


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


def bill(
    ctx: Ctx,
    sub: dict[str, Any],
    lines: list[dict[str, Any]],
    billing_reason: str,
    period: tuple[int, int],
    dunning: bool = True,
) -> tuple[dict[str, Any], bool]:
    """Invoice ``lines`` for ``sub`` (with the customer's pending invoice items, as Stripe
    does), finalize and (unless paused) charge. -> (invoice, paid)."""
    customer = ctx.store.get("customer", sub["customer"])
    assert customer is not None
    items = pending_items(ctx, customer["id"], sub["currency"])
    lines = lines + [invoice_item_line(item) for item in items]
    invoice = build_invoice(ctx, customer, sub, lines, billing_reason, period)
    for item in items:
        item["invoice"] = invoice["id"]
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


def has_unpaid(ctx: Ctx, sub: dict[str, Any]) -> bool:
    return any(
        inv["subscription"] == sub["id"] and inv["status"] == "open" and inv["amount_remaining"] > 0
        for inv in ctx.store.all("invoice")
    )


_NOTHING_YET = (
    "account_tax_ids",
    "application",
    "automatically_finalizes_at",
    "custom_fields",
    "customer_account",
    "default_payment_method",
    "default_source",
    "due_date",
    "effective_at",
    "ending_balance",
    "footer",
    "from_invoice",
    "hosted_invoice_url",
    "invoice_pdf",
    "last_finalization_error",
    "latest_revision",
    "next_payment_attempt",
    "number",
    "on_behalf_of",
    "receipt_number",
    "rendering",
    "shipping_cost",
    "shipping_details",
    "statement_descriptor",
    "webhooks_delivered_at",
)


def _unset_invoice_fields() -> dict[str, Any]:
    """Fields a new draft has before anything happens to it."""
    return {
        **dict.fromkeys(_NOTHING_YET),
        "account_country": "US",
        "account_name": "Stripe Sandbox",
        "amount_shipping": 0,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "customer_tax_ids": [],
        "default_tax_rates": [],
        "discounts": [],
        "issuer": {"type": "self"},
        "livemode": False,
        "metadata": {},
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "starting_balance": 0,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "total_discount_amounts": [],
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
    }


def _customer_fields(customer: dict[str, Any]) -> dict[str, Any]:
    return {
        "customer": customer["id"],
        "customer_address": customer.get("address"),
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "customer_phone": customer.get("phone"),
        "customer_shipping": customer.get("shipping"),
        "customer_tax_exempt": customer.get("tax_exempt", "none"),
        "customer_tax_ids": [dict(tax_id) for tax_id in customer.get("_tax_ids") or []],
    }


def _amounts(total: int) -> dict[str, Any]:
    return {
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": total,
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "total": total,
        "total_excluding_tax": total,
    }


def _parent(sub: dict[str, Any] | None) -> dict[str, Any] | None:
    if sub is None:
        return None
    return {
        "type": "subscription_details",
        "quote_details": None,
        "subscription_details": {
            "metadata": dict(sub["metadata"]),
            "subscription": sub["id"],
        },
    }
