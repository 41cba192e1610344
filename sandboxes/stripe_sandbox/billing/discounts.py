"""Coupons and promotion codes (the customer-facing codes of a coupon)."""

from __future__ import annotations

import re
from typing import Any

from ..context import Ctx
from ..errors import StripeError, bad_state, missing
from ..ids import new_id, random_token
from ..params import apply_metadata
from ..timeutil import wall_now

CODE_RE = re.compile(r"^[a-zA-Z0-9]{1,500}$")


def new_coupon(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    coupon_id = p.get("id") or random_token(8)
    if ctx.store.find(coupon_id) is not None:
        raise StripeError(400, "Coupon already exists.", code="resource_already_exists", param="id")
    _check_amounts(p)
    duration = p.get("duration") or "once"
    if duration == "repeating" and not p.get("duration_in_months"):
        raise missing("duration_in_months")
    coupon = {
        "id": coupon_id,
        "object": "coupon",
        "amount_off": p.get("amount_off"),
        "created": wall_now(),
        "currency": (p.get("currency") or "").lower() or None,
        "duration": duration,
        "duration_in_months": p.get("duration_in_months") if duration == "repeating" else None,
        "livemode": False,
        "max_redemptions": p.get("max_redemptions"),
        "metadata": apply_metadata({}, p.get("metadata")),
        "name": p.get("name"),
        "percent_off": float(p["percent_off"]) if p.get("percent_off") is not None else None,
        "redeem_by": p.get("redeem_by"),
        "times_redeemed": 0,
        "valid": True,
    }
    ctx.store.insert(coupon)
    ctx.emit("coupon.created", coupon)
    return coupon


def _check_amounts(p: dict[str, Any]) -> None:
    if p.get("percent_off") is None and p.get("amount_off") is None:
        raise missing("percent_off")
    if p.get("percent_off") is not None and p.get("amount_off") is not None:
        raise StripeError(
            400,
            "You may only specify one of these parameters: amount_off, percent_off.",
            code="parameters_exclusive",
            param="amount_off",
        )
    if p.get("amount_off") is not None and not p.get("currency"):
        raise missing("currency")
    percent = p.get("percent_off")
    if percent is not None:
        try:
            value = float(percent)
        except ValueError:
            value = -1.0
        if not 0 < value <= 100:
            raise StripeError(
                400,
                "Invalid percent_off: must be greater than 0 and at most 100.",
                code="parameter_invalid_decimal",
                param="percent_off",
            )


def update_coupon(ctx: Ctx, coupon: dict[str, Any], p: dict[str, Any]) -> None:
    before = ctx.render(coupon)
    if "name" in p:
        coupon["name"] = p["name"]
    if "metadata" in p:
        coupon["metadata"] = apply_metadata(coupon["metadata"], p["metadata"])
    ctx.emit_updated("coupon.updated", coupon, before)


def delete_coupon(ctx: Ctx, coupon: dict[str, Any]) -> None:
    ctx.emit("coupon.deleted", coupon)
    coupon["_deleted"] = True


def new_promotion_code(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    promotion = p.get("promotion") or {}
    coupon_id = promotion.get("coupon") or p.get("coupon")
    if not coupon_id:
        raise missing("promotion[coupon]")
    coupon = ctx.store.require("coupon", coupon_id, "promotion[coupon]")
    code = p.get("code") or random_token(8).upper()
    if not CODE_RE.match(code):
        raise bad_state("Promotion codes may only contain letters and digits.", "code")
    if any(pc["code"].lower() == code.lower() and pc["active"] for pc in _codes(ctx)):
        raise bad_state(f"An active promotion code with `code: {code}` already exists.", "code")
    if p.get("customer"):
        ctx.store.require("customer", p["customer"], "customer")
    promo = {
        "id": new_id("promo"),
        "object": "promotion_code",
        "active": p.get("active") is not False,
        "code": code,
        "created": wall_now(),
        "customer": p.get("customer"),
        "customer_account": None,
        "expires_at": p.get("expires_at"),
        "livemode": False,
        "max_redemptions": p.get("max_redemptions"),
        "metadata": apply_metadata({}, p.get("metadata")),
        "promotion": {"coupon": coupon["id"], "type": "coupon"},
        "restrictions": _restrictions(p.get("restrictions") or {}),
        "times_redeemed": 0,
    }
    ctx.store.insert(promo)
    ctx.emit("promotion_code.created", promo)
    return promo


def _codes(ctx: Ctx) -> list[dict[str, Any]]:
    return ctx.store.all("promotion_code")


def _restrictions(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "first_time_transaction": bool(r.get("first_time_transaction")),
        "minimum_amount": r.get("minimum_amount"),
        "minimum_amount_currency": r.get("minimum_amount_currency"),
    }


def update_promotion_code(ctx: Ctx, promo: dict[str, Any], p: dict[str, Any]) -> None:
    before = ctx.render(promo)
    if "active" in p and p["active"] is not None:
        promo["active"] = p["active"]
    if "metadata" in p:
        promo["metadata"] = apply_metadata(promo["metadata"], p["metadata"])
    ctx.emit_updated("promotion_code.updated", promo, before)


def checkout_discounts(
    ctx: Ctx, requested: list[dict[str, Any]], subtotal: int
) -> tuple[list[dict[str, Any]], int]:
    """A Checkout Session's ``discounts[]``: the discounts as the session shows them and the
    amount they take off ``subtotal`` (percent or amount off; one discount, as Stripe allows)."""
    if not requested:
        return [], 0
    if len(requested) > 1:
        raise bad_state("You may only specify one discount.", "discounts")
    wanted = requested[0]
    promo_id = wanted.get("promotion_code")
    coupon_id = wanted.get("coupon")
    if promo_id:
        promo = ctx.store.require("promotion_code", promo_id, "discounts[0][promotion_code]")
        if not promo["active"]:
            raise bad_state(
                f"This promotion code is not active: '{promo_id}'", "discounts[0][promotion_code]"
            )
        coupon_id = promo["promotion"]["coupon"]
    if not coupon_id:
        raise missing("discounts[0][coupon]")
    coupon = ctx.store.require("coupon", coupon_id, "discounts[0][coupon]")
    if coupon.get("percent_off"):
        off = round(subtotal * float(coupon["percent_off"]) / 100)
    else:
        off = int(coupon.get("amount_off") or 0)
    shown = {"coupon": None if promo_id else coupon_id, "promotion_code": promo_id}
    return [shown], min(off, subtotal)
