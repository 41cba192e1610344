"""Coupons and promotion codes: create, retrieve, update, list (and delete a coupon)."""

from __future__ import annotations

from typing import Any

from ..billing import discounts
from ..context import Ctx
from ..params import AnyVal, Bool, Int, Meta, Obj, Str, validate
from ..routes import route
from .common import list_response, retrieve_stored


@route("POST", "/v1/coupons")
def create_coupon(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            "id": Str(max_length=200),
            "amount_off": Int(min=1),
            "currency": Str(),
            "percent_off": Str(),
            "duration": Str(enum=["forever", "once", "repeating"]),
            "duration_in_months": Int(min=1),
            "max_redemptions": Int(min=1),
            "redeem_by": Int(),
            "name": Str(max_length=40),
            "metadata": Meta(),
            "applies_to": AnyVal(),
            "currency_options": AnyVal(),
        },
    )
    return ctx.render(discounts.new_coupon(ctx, p))


route("GET", "/v1/coupons/<coupon_id>")(retrieve_stored("coupon"))


@route("POST", "/v1/coupons/<coupon_id>")
def update_coupon(ctx: Ctx, params: dict[str, Any], coupon_id: str) -> dict[str, Any]:
    coupon = ctx.store.require("coupon", coupon_id)
    p = validate(
        params, {"name": Str(unsettable=True), "metadata": Meta(), "currency_options": AnyVal()}
    )
    discounts.update_coupon(ctx, coupon, p)
    return ctx.render(coupon)


@route("DELETE", "/v1/coupons/<coupon_id>")
def delete_coupon(ctx: Ctx, params: dict[str, Any], coupon_id: str) -> dict[str, Any]:
    validate(params, {})
    discounts.delete_coupon(ctx, ctx.store.require("coupon", coupon_id))
    return {"id": coupon_id, "object": "coupon", "deleted": True}


@route("GET", "/v1/coupons")
def list_coupons(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return list_response(ctx, "coupon", params, {}, "/v1/coupons")


@route("POST", "/v1/promotion_codes")
def create_promotion_code(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            "promotion": Obj({"type": Str(enum=["coupon"]), "coupon": Str()}),
            "coupon": Str(),
            "code": Str(max_length=500),
            "active": Bool(),
            "customer": Str(),
            "expires_at": Int(),
            "max_redemptions": Int(min=1),
            "metadata": Meta(),
            "restrictions": AnyVal(),
        },
    )
    return ctx.render(discounts.new_promotion_code(ctx, p))


route("GET", "/v1/promotion_codes/<promo_id>")(retrieve_stored("promotion_code"))


@route("POST", "/v1/promotion_codes/<promo_id>")
def update_promotion_code(ctx: Ctx, params: dict[str, Any], promo_id: str) -> dict[str, Any]:
    promo = ctx.store.require("promotion_code", promo_id)
    p = validate(params, {"active": Bool(), "metadata": Meta(), "restrictions": AnyVal()})
    discounts.update_promotion_code(ctx, promo, p)
    return ctx.render(promo)


@route("GET", "/v1/promotion_codes")
def list_promotion_codes(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        if p.get("code") and o["code"].lower() != p["code"].lower():
            return False
        if p.get("coupon") and o["promotion"]["coupon"] != p["coupon"]:
            return False
        if p.get("customer") and o["customer"] != p["customer"]:
            return False
        return not (p.get("active") is not None and o["active"] != p["active"])

    return list_response(
        ctx,
        "promotion_code",
        params,
        {"code": Str(), "coupon": Str(), "customer": Str(), "active": Bool()},
        "/v1/promotion_codes",
        keep,
    )
