"""Refunds (create, retrieve, list) of a charge or a payment intent's charge, shaped as
Stripe's `refund` object; the charge's `amount_refunded` and `refunded` follow."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..errors import StripeError, invalid
from ..ids import new_id
from ..params import Int, Meta, Spec, Str, validate
from ..routes import route
from .common import list_response, matching_params, retrieve_stored

CREATE = {
    "charge": Str(),
    "payment_intent": Str(),
    "amount": Int(min=1),
    "reason": Str(enum=["duplicate", "fraudulent", "requested_by_customer"]),
    "metadata": Meta(),
}


def _charge_of(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    if p.get("charge"):
        return ctx.store.require("charge", p["charge"], "charge")
    if p.get("payment_intent"):
        pi = ctx.store.require("payment_intent", p["payment_intent"], "payment_intent")
        if not pi.get("latest_charge"):
            raise StripeError(
                400,
                f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                code="charge_not_refundable",
            )
        return ctx.store.require("charge", pi["latest_charge"])
    raise StripeError(
        400, "One of `charge` or `payment_intent` is required.", code="parameter_missing"
    )


@route("POST", "/v1/refunds")
def create_refund(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(params, CREATE)
    charge = _charge_of(ctx, p)
    if not charge.get("paid") or not charge.get("captured"):
        raise StripeError(
            400, f"Charge {charge['id']} has not been paid.", code="charge_not_refundable"
        )
    left = charge["amount_captured"] - charge["amount_refunded"]
    amount = p.get("amount", left)
    if left <= 0:
        raise StripeError(
            400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
        )
    if amount > left:
        raise invalid(
            "amount",
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
            code="amount_too_large",
        )
    before = ctx.render(charge)
    refund = {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": charge["id"],
        "created": ctx.now_for(charge.get("customer")),
        "currency": charge["currency"],
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": p.get("metadata") or {},
        "payment_intent": charge.get("payment_intent"),
        "reason": p.get("reason"),
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
        "customer": charge.get("customer"),
        "customer_account": None,
        "payment_method": charge.get("payment_method"),
    }
    ctx.store.insert(refund)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
    ctx.emit("refund.created", refund)
    ctx.emit_updated("charge.refunded", charge, before)
    return ctx.render(refund)


@route("GET", "/v1/refunds")
def list_refunds(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    keep = matching_params("charge", "payment_intent")
    filters: dict[str, Spec] = {"charge": Str(), "payment_intent": Str()}
    return list_response(ctx, "refund", params, filters, "/v1/refunds", keep)


route("GET", "/v1/refunds/<refund_id>")(retrieve_stored("refund"))
