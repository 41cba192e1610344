"""Payment intents (create, update, confirm, capture, cancel, retrieve, list) and charges."""

from __future__ import annotations

from typing import Any

from ..billing import payment_intents
from ..billing.catalog import check_currency
from ..billing.payment_methods import resolve_payment_method
from ..context import Ctx
from ..errors import StripeError
from ..params import AnyVal, Bool, Int, Meta, Str, validate
from ..routes import route
from .common import list_response, matching_params, retrieve_stored

# accepted and ignored: settings the sandbox does not model
IGNORED = {
    k: AnyVal()
    for k in [
        "automatic_payment_methods",
        "payment_method_options",
        "payment_method_data",
        "mandate_data",
        "shipping",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "return_url",
        "use_stripe_sdk",
        "error_on_requires_action",
        "confirmation_method",
        "setup_future_usage",
        "radar_options",
        "payment_method_configuration",
        "excluded_payment_method_types",
        "transfer_group",
        "application_fee_amount",
        "on_behalf_of",
        "transfer_data",
        "mandate",
    ]
}
CREATE = {
    **IGNORED,
    "amount": Int(required=True, min=1),
    "currency": Str(required=True),
    "customer": Str(),
    "description": Str(),
    "metadata": Meta(),
    "payment_method": Str(),
    "payment_method_types": AnyVal(),
    "receipt_email": Str(),
    "capture_method": Str(enum=["automatic", "automatic_async", "manual"]),
    "confirm": Bool(),
    "off_session": AnyVal(),
}
CONFIRM = {**IGNORED, "payment_method": Str(), "off_session": AnyVal(), "receipt_email": Str()}


def _off_session(value: Any) -> bool:
    return value not in (None, False, "false", "")


def _method(ctx: Ctx, pm_id: str | None) -> dict[str, Any] | None:
    return resolve_payment_method(ctx, pm_id, "payment_method") if pm_id else None


@route("POST", "/v1/payment_intents")
def create_payment_intent(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(params, CREATE)
    if p.get("customer"):
        ctx.store.require("customer", p["customer"], "customer")
    pm = _method(ctx, p.get("payment_method"))
    pi = payment_intents.new_payment_intent(
        ctx,
        amount=p["amount"],
        currency=check_currency(p["currency"]),
        customer_id=p.get("customer"),
        description=p.get("description"),
        metadata=p.get("metadata") or None,
        payment_method=pm["id"] if pm else None,
        capture_method=p.get("capture_method") or "automatic",
    )
    if p.get("confirm"):
        payment_intents.confirm_or_decline(ctx, pi, pm, _off_session(p.get("off_session")))
    return ctx.render(pi)


@route("POST", "/v1/payment_intents/<pi_id>")
def update_payment_intent(ctx: Ctx, params: dict[str, Any], pi_id: str) -> dict[str, Any]:
    pi = ctx.store.require("payment_intent", pi_id)
    p = validate(
        params,
        {
            **IGNORED,
            "amount": Int(min=1),
            "currency": Str(),
            "customer": Str(),
            "description": Str(unsettable=True),
            "metadata": Meta(),
            "payment_method": Str(),
            "receipt_email": Str(unsettable=True),
            "payment_method_types": AnyVal(),
        },
    )
    pm = _method(ctx, p.get("payment_method"))
    if pm is not None:
        pi["payment_method"] = pm["id"]
        pi["status"] = "requires_confirmation"
    payment_intents.update_payment_intent(ctx, pi, p)
    return ctx.render(pi)


@route("POST", "/v1/payment_intents/<pi_id>/confirm")
def confirm_payment_intent(ctx: Ctx, params: dict[str, Any], pi_id: str) -> dict[str, Any]:
    pi = ctx.store.require("payment_intent", pi_id)
    p = validate(params, CONFIRM)
    pm = _method(ctx, p.get("payment_method") or pi["payment_method"])
    if pm is None:
        raise StripeError(
            400,
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            code="payment_intent_unexpected_state",
            param="payment_method",
        )
    payment_intents.confirm_or_decline(ctx, pi, pm, _off_session(p.get("off_session")))
    return ctx.render(pi)


@route("POST", "/v1/payment_intents/<pi_id>/capture")
def capture_payment_intent(ctx: Ctx, params: dict[str, Any], pi_id: str) -> dict[str, Any]:
    pi = ctx.store.require("payment_intent", pi_id)
    validate(params, {"amount_to_capture": Int(min=1), "metadata": Meta()})
    payment_intents.capture_payment_intent(ctx, pi)
    return ctx.render(pi)


@route("POST", "/v1/payment_intents/<pi_id>/cancel")
def cancel_payment_intent(ctx: Ctx, params: dict[str, Any], pi_id: str) -> dict[str, Any]:
    pi = ctx.store.require("payment_intent", pi_id)
    reasons = ["abandoned", "duplicate", "fraudulent", "requested_by_customer"]
    p = validate(params, {"cancellation_reason": Str(enum=reasons)})
    payment_intents.cancel_payment_intent(ctx, pi, p.get("cancellation_reason"))
    return ctx.render(pi)


@route("GET", "/v1/payment_intents")
def list_payment_intents(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    keep = matching_params("customer")

    return list_response(
        ctx, "payment_intent", params, {"customer": Str()}, "/v1/payment_intents", keep
    )


@route("GET", "/v1/payment_intents/<pi_id>")
def retrieve_payment_intent(ctx: Ctx, params: dict[str, Any], pi_id: str) -> dict[str, Any]:
    validate(params, {"client_secret": Str()})
    return ctx.render(ctx.store.require("payment_intent", pi_id))


@route("GET", "/v1/charges")
def list_charges(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    keep = matching_params("customer", "payment_intent")

    return list_response(
        ctx, "charge", params, {"customer": Str(), "payment_intent": Str()}, "/v1/charges", keep
    )


route("GET", "/v1/charges/<charge_id>")(retrieve_stored("charge"))
