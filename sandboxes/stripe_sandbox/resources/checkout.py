"""Checkout sessions: create, retrieve, list, update, expire, line items."""

from __future__ import annotations

from typing import Any

from ..billing import checkout
from ..context import Ctx
from ..errors import bad_state
from ..params import LIST_PARAMS, AnyVal, Arr, Bool, Int, Meta, Obj, Str, apply_metadata, validate
from ..routes import route
from ..wire import list_object, paginate
from .common import list_response, retrieve_stored

SUBSCRIPTION_DATA = Obj(
    {
        "metadata": Meta(),
        "trial_period_days": Int(min=1, max=730),
        "trial_end": Int(),
        "description": Str(max_length=500),
        "default_tax_rates": AnyVal(),
        "application_fee_percent": AnyVal(),
        "billing_cycle_anchor": Int(),
        "billing_mode": AnyVal(),
        "invoice_settings": AnyVal(),
        "on_behalf_of": Str(),
        "proration_behavior": Str(enum=["create_prorations", "none"]),
        "transfer_data": AnyVal(),
        "trial_settings": AnyVal(),
        "pending_invoice_item_interval": AnyVal(),
    }
)

LINE_ITEM = Obj(
    {
        "price": Str(),
        "quantity": Int(min=0, max=999999),
        "price_data": AnyVal(),
        "adjustable_quantity": AnyVal(),
        "dynamic_tax_rates": AnyVal(),
        "tax_rates": AnyVal(),
        "metadata": Meta(),
    }
)

CREATE_SCHEMA = {
    "mode": Str(required=True, enum=["payment", "setup", "subscription"]),
    "customer": Str(),
    "customer_email": Str(max_length=800),
    "client_reference_id": Str(max_length=200),
    "line_items": Arr(LINE_ITEM),
    "success_url": Str(max_length=5000),
    "cancel_url": Str(max_length=5000),
    "return_url": Str(max_length=5000),
    "metadata": Meta(),
    "subscription_data": SUBSCRIPTION_DATA,
    "allow_promotion_codes": Bool(),
    "billing_address_collection": Str(enum=["auto", "required"]),
    "payment_method_types": Arr(Str()),
    "expires_at": Int(),
    "locale": Str(),
    "customer_creation": Str(enum=["always", "if_required"]),
    "ui_mode": Str(
        enum=["hosted", "embedded", "custom", "elements", "hosted_page", "embedded_page"]
    ),
    "automatic_tax": AnyVal(),
    "consent_collection": AnyVal(),
    "currency": Str(),
    "custom_fields": AnyVal(),
    "custom_text": AnyVal(),
    "customer_update": AnyVal(),
    "discounts": Arr(Obj({"coupon": Str(), "promotion_code": Str()}), max_items=20),
    "invoice_creation": AnyVal(),
    "payment_intent_data": AnyVal(),
    "payment_method_collection": Str(enum=["always", "if_required"]),
    "payment_method_configuration": Str(),
    "payment_method_data": AnyVal(),
    "payment_method_options": AnyVal(),
    "phone_number_collection": AnyVal(),
    "redirect_on_completion": Str(enum=["always", "if_required", "never"]),
    "saved_payment_method_options": AnyVal(),
    "setup_intent_data": AnyVal(),
    "shipping_address_collection": AnyVal(),
    "shipping_options": AnyVal(),
    "submit_type": Str(enum=["auto", "book", "donate", "pay", "subscribe"]),
    "tax_id_collection": AnyVal(),
    "after_expiration": AnyVal(),
    "adaptive_pricing": AnyVal(),
    "origin_context": Str(),
    "wallet_options": AnyVal(),
    "permissions": AnyVal(),
    "optional_items": AnyVal(),
    "name_collection": AnyVal(),
    "branding_settings": AnyVal(),
    "excluded_payment_method_types": AnyVal(),
}


@route("POST", "/v1/checkout/sessions")
def create_session(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return ctx.render(checkout.new_session(ctx, validate(params, CREATE_SCHEMA)))


route("GET", "/v1/checkout/sessions/<session_id>")(retrieve_stored("checkout.session"))


@route("POST", "/v1/checkout/sessions/<session_id>")
def update_session(ctx: Ctx, params: dict[str, Any], session_id: str) -> dict[str, Any]:
    session = ctx.store.require("checkout.session", session_id)
    p = validate(
        params,
        {
            "metadata": Meta(),
            "collected_information": AnyVal(),
            "shipping_options": AnyVal(),
            "line_items": AnyVal(),
        },
    )
    if "metadata" in p:
        session["metadata"] = apply_metadata(session["metadata"], p["metadata"])
    return ctx.render(session)


@route("GET", "/v1/checkout/sessions/<session_id>/line_items")
def list_line_items(ctx: Ctx, params: dict[str, Any], session_id: str) -> dict[str, Any]:
    session = ctx.store.require("checkout.session", session_id)
    p = validate(params, dict(LIST_PARAMS))
    rendered = checkout.session_line_items(ctx.store, session)
    page, has_more = paginate(rendered["data"], p, "line item")
    return list_object(page, rendered["url"], has_more)


@route("GET", "/v1/checkout/sessions")
def list_sessions(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        for key in ("customer", "payment_intent", "status", "subscription", "payment_link"):
            if p.get(key) and o[key] != p[key]:
                return False
        email = (p.get("customer_details") or {}).get("email")
        return not (email and (o["customer_details"] or {}).get("email") != email)

    return list_response(
        ctx,
        "checkout.session",
        params,
        {
            "customer": Str(),
            "customer_details": Obj({"email": Str(required=True)}),
            "payment_intent": Str(),
            "payment_link": Str(),
            "subscription": Str(),
            "status": Str(enum=["complete", "expired", "open"]),
            "customer_account": Str(),
        },
        "/v1/checkout/sessions",
        keep,
    )


@route("POST", "/v1/checkout/sessions/<session_id>/expire")
def expire(ctx: Ctx, params: dict[str, Any], session_id: str) -> dict[str, Any]:
    session = ctx.store.require("checkout.session", session_id)
    validate(params, {})
    if session["status"] != "open":
        raise bad_state(
            f'Only Checkout Sessions with a status in ["open"] can be expired. '
            f'This Checkout Session has a status of "{session["status"]}".'
        )
    checkout.expire_session(ctx, session)
    return ctx.render(session)


# ----------------------------------------------------------- completion
