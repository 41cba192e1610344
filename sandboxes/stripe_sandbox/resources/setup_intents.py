"""Setup intents: create (optionally confirmed), update, confirm, cancel, retrieve, list."""

from __future__ import annotations

from typing import Any

from ..billing import setup_intents
from ..billing.payment_methods import resolve_payment_method
from ..context import Ctx
from ..params import AnyVal, Bool, Meta, Str, validate
from ..routes import route
from .common import list_response, matching_params, retrieve_stored

IGNORED = {
    k: AnyVal()
    for k in [
        "automatic_payment_methods",
        "payment_method_options",
        "payment_method_data",
        "mandate_data",
        "return_url",
        "use_stripe_sdk",
        "flow_directions",
        "on_behalf_of",
        "attach_to_self",
        "single_use",
        "payment_method_configuration",
        "excluded_payment_method_types",
    ]
}


def _method(ctx: Ctx, pm_id: str | None) -> dict[str, Any] | None:
    return resolve_payment_method(ctx, pm_id, "payment_method") if pm_id else None


@route("POST", "/v1/setup_intents")
def create_setup_intent(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            **IGNORED,
            "customer": Str(),
            "description": Str(),
            "metadata": Meta(),
            "payment_method": Str(),
            "payment_method_types": AnyVal(),
            "usage": Str(enum=["off_session", "on_session"]),
            "confirm": Bool(),
        },
    )
    if p.get("customer"):
        ctx.store.require("customer", p["customer"], "customer")
    pm = _method(ctx, p.get("payment_method"))
    seti = setup_intents.new_setup_intent(ctx, p, pm)
    if p.get("confirm"):
        setup_intents.confirm_setup_intent(ctx, seti, pm)
    return ctx.render(seti)


@route("POST", "/v1/setup_intents/<seti_id>/confirm")
def confirm_setup_intent(ctx: Ctx, params: dict[str, Any], seti_id: str) -> dict[str, Any]:
    seti = ctx.store.require("setup_intent", seti_id)
    p = validate(params, {**IGNORED, "payment_method": Str()})
    pm = _method(ctx, p.get("payment_method") or seti["payment_method"])
    setup_intents.confirm_setup_intent(ctx, seti, pm)
    return ctx.render(seti)


@route("POST", "/v1/setup_intents/<seti_id>/cancel")
def cancel_setup_intent(ctx: Ctx, params: dict[str, Any], seti_id: str) -> dict[str, Any]:
    seti = ctx.store.require("setup_intent", seti_id)
    reasons = ["abandoned", "duplicate", "requested_by_customer"]
    p = validate(params, {"cancellation_reason": Str(enum=reasons)})
    setup_intents.cancel_setup_intent(ctx, seti, p.get("cancellation_reason"))
    return ctx.render(seti)


route("GET", "/v1/setup_intents/<seti_id>")(retrieve_stored("setup_intent"))


@route("GET", "/v1/setup_intents")
def list_setup_intents(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    keep = matching_params("customer", "payment_method")

    return list_response(
        ctx,
        "setup_intent",
        params,
        {"customer": Str(), "payment_method": Str(), "attach_to_self": Bool()},
        "/v1/setup_intents",
        keep,
    )
