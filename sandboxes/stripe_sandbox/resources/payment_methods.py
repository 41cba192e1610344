"""Payment methods: create (test cards and tokens), retrieve, attach, detach, list."""

from __future__ import annotations

from typing import Any

from ..billing import payment_methods
from ..context import Ctx
from ..params import AnyVal, Int, Meta, Obj, Str, validate
from ..routes import route
from .common import list_response, retrieve_stored

CARD_PARAMS = Obj(
    {"number": Str(), "exp_month": Int(), "exp_year": Int(), "cvc": Str(), "token": Str()}
)


@route("POST", "/v1/payment_methods")
def create_payment_method(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            "type": Str(required=True, enum=["card"]),
            "card": CARD_PARAMS,
            "billing_details": AnyVal(),
            "metadata": Meta(),
            "allow_redisplay": Str(),
            "customer": Str(),
            "payment_method": Str(),
        },
    )
    card = payment_methods.card_from_params(p.get("card") or {})
    details = p.get("billing_details") or {}
    if not isinstance(details, dict):
        details = {}
    pm = payment_methods.new_payment_method(
        ctx, card, email=details.get("email"), name=details.get("name")
    )
    return ctx.render(pm)


route("GET", "/v1/payment_methods/<pm_id>")(retrieve_stored("payment_method"))


@route("POST", "/v1/payment_methods/<pm_id>/attach")
def attach(ctx: Ctx, params: dict[str, Any], pm_id: str) -> dict[str, Any]:
    p = validate(params, {"customer": Str(required=True)})
    customer = ctx.store.require("customer", p["customer"], "customer")
    return ctx.render(payment_methods.attach_payment_method(ctx, pm_id, customer))


@route("POST", "/v1/payment_methods/<pm_id>/detach")
def detach(ctx: Ctx, params: dict[str, Any], pm_id: str) -> dict[str, Any]:
    validate(params, {})
    pm = ctx.store.require("payment_method", pm_id)
    payment_methods.detach_payment_method(ctx, pm)
    return ctx.render(pm)


def _customer_pms(
    ctx: Ctx, params: dict[str, Any], customer_id: str | None, url: str
) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        cid = customer_id or p.get("customer")
        if cid and o.get("customer") != cid:
            return False
        return not (p.get("type") and o["type"] != p["type"])

    return list_response(
        ctx,
        "payment_method",
        params,
        {"customer": Str(), "type": Str(), "allow_redisplay": Str()},
        url,
        keep,
    )


@route("GET", "/v1/payment_methods")
def list_payment_methods(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return _customer_pms(ctx, params, None, "/v1/payment_methods")


@route("GET", "/v1/customers/<customer_id>/payment_methods")
def list_customer_payment_methods(
    ctx: Ctx, params: dict[str, Any], customer_id: str
) -> dict[str, Any]:
    ctx.store.require("customer", customer_id)
    return _customer_pms(ctx, params, customer_id, f"/v1/customers/{customer_id}/payment_methods")
