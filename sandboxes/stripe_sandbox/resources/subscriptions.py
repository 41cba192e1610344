"""Subscriptions and subscription items."""

from __future__ import annotations

from typing import Any

from .. import billing
from ..billing import subscription_requests
from ..context import Ctx
from ..errors import StripeError
from ..params import AnyVal, Arr, Bool, Int, Meta, Obj, Spec, Str, validate
from ..routes import route
from .common import list_response, retrieve_stored

STATUSES = [
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
]
PRORATION = Str(enum=["always_invoice", "create_prorations", "none"])
PAYMENT_BEHAVIOR = Str(
    enum=["allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"]
)
FEEDBACK = [
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
]
CANCELLATION_DETAILS = Obj(
    {"comment": Str(unsettable=True), "feedback": Str(unsettable=True, enum=FEEDBACK)}
)
TRIAL_SETTINGS = Obj(
    {
        "end_behavior": Obj(
            {
                "missing_payment_method": Str(
                    required=True, enum=["cancel", "create_invoice", "pause"]
                )
            },
            required=True,
        )
    }
)

ITEM_FIELDS: dict[str, Spec] = {
    "price": Str(),
    "quantity": Int(min=0),
    "metadata": Meta(),
    "price_data": AnyVal(),
    "discounts": AnyVal(),
    "tax_rates": AnyVal(),
    "billing_thresholds": AnyVal(),
    "plan": Str(),
}

# accepted and stored/ignored: settings the sandbox does not model
COMMON_IGNORED: dict[str, Spec] = {
    "payment_settings": AnyVal(),
    "automatic_tax": AnyVal(),
    "discounts": AnyVal(),
    "coupon": Str(),
    "promotion_code": Str(),
    "default_tax_rates": AnyVal(),
    "invoice_settings": AnyVal(),
    "on_behalf_of": Str(unsettable=True),
    "transfer_data": AnyVal(),
    "application_fee_percent": AnyVal(),
    "pending_invoice_item_interval": AnyVal(),
    "billing_thresholds": AnyVal(),
    "add_invoice_items": AnyVal(),
    "default_source": Str(unsettable=True),
    "off_session": Bool(),
    "proration_date": Int(),
    "days_until_due": Int(min=0),
    "collection_method": Str(enum=["charge_automatically", "send_invoice"]),
}


# ------------------------------------------------------------------ create


@route("POST", "/v1/subscriptions")
def create_subscription(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            **COMMON_IGNORED,
            "customer": Str(required=True),
            "items": Arr(Obj(ITEM_FIELDS), required=True, max_items=20),
            "trial_period_days": Int(min=0, max=730),
            "trial_end": Int(literals=["now"]),
            "trial_from_plan": Bool(),
            "metadata": Meta(),
            "description": Str(max_length=500),
            "default_payment_method": Str(),
            "payment_behavior": PAYMENT_BEHAVIOR,
            "cancel_at_period_end": Bool(),
            "cancel_at": Int(),
            "proration_behavior": PRORATION,
            "billing_cycle_anchor": Int(),
            "billing_cycle_anchor_config": AnyVal(),
            "trial_settings": TRIAL_SETTINGS,
            "currency": Str(),
            "backdate_start_date": Int(),
            "billing_mode": AnyVal(),
        },
    )
    sub = subscription_requests.subscribe(ctx, p)
    return ctx.render(sub)


# ---------------------------------------------------------- read / list


route("GET", "/v1/subscriptions/<sub_id>")(retrieve_stored("subscription"))


@route("GET", "/v1/subscriptions")
def list_subscriptions(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        status = p.get("status")
        if status is None and o["status"] in ("canceled", "incomplete_expired"):
            return False
        if status == "ended" and o["status"] not in ("canceled", "incomplete_expired"):
            return False
        if status not in (None, "all", "ended") and o["status"] != status:
            return False
        if p.get("customer") and o["customer"] != p["customer"]:
            return False
        if p.get("test_clock") and o["test_clock"] != p["test_clock"]:
            return False
        if p.get("collection_method") and o["collection_method"] != p["collection_method"]:
            return False
        items = billing.items_of(ctx.store, o)
        return not (p.get("price") and not any(it["price"] == p["price"] for it in items))

    return list_response(
        ctx,
        "subscription",
        params,
        {
            "customer": Str(),
            "price": Str(),
            "plan": Str(),
            "status": Str(enum=STATUSES),
            "test_clock": Str(),
            "collection_method": Str(enum=["charge_automatically", "send_invoice"]),
            "current_period_end": AnyVal(),
            "current_period_start": AnyVal(),
            "automatic_tax": AnyVal(),
        },
        "/v1/subscriptions",
        keep,
    )


# ------------------------------------------------------------------ update

UPDATE_SCHEMA: dict[str, Spec] = {
    **COMMON_IGNORED,
    "cancel_at_period_end": Bool(),
    "cancel_at": Int(unsettable=True, literals=["max_period_end", "min_period_end"]),
    "items": Arr(
        Obj({**ITEM_FIELDS, "id": Str(), "deleted": Bool(), "clear_usage": Bool()}), max_items=20
    ),
    "proration_behavior": PRORATION,
    "metadata": Meta(),
    "pause_collection": Obj(
        {
            "behavior": Str(required=True, enum=["keep_as_draft", "mark_uncollectible", "void"]),
            "resumes_at": Int(),
        },
        unsettable=True,
    ),
    "description": Str(unsettable=True, max_length=500),
    "trial_end": Int(literals=["now"]),
    "trial_from_plan": Bool(),
    "trial_settings": TRIAL_SETTINGS,
    "default_payment_method": Str(unsettable=True),
    "payment_behavior": PAYMENT_BEHAVIOR,
    "billing_cycle_anchor": Str(enum=["now", "unchanged"]),
    "cancellation_details": CANCELLATION_DETAILS,
}


@route("POST", "/v1/subscriptions/<sub_id>")
def update_subscription(ctx: Ctx, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
    sub = ctx.store.require("subscription", sub_id)
    p = validate(params, UPDATE_SCHEMA)
    subscription_requests.update_subscription(ctx, sub, p)
    return ctx.render(sub)


# ------------------------------------------------------------ cancel/resume


@route("DELETE", "/v1/subscriptions/<sub_id>")
def cancel_subscription(ctx: Ctx, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
    sub = ctx.store.require("subscription", sub_id)
    p = validate(
        params,
        {"invoice_now": Bool(), "prorate": Bool(), "cancellation_details": CANCELLATION_DETAILS},
    )
    subscription_requests.cancel(ctx, sub, p)
    return ctx.render(sub)


@route("POST", "/v1/subscriptions/<sub_id>/resume")
def resume_subscription(ctx: Ctx, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
    sub = ctx.store.require("subscription", sub_id)
    p = validate(
        params,
        {
            "billing_cycle_anchor": Str(enum=["now", "unchanged"]),
            "proration_behavior": PRORATION,
            "proration_date": Int(),
        },
    )
    subscription_requests.resume(ctx, sub, p.get("billing_cycle_anchor") or "now")
    return ctx.render(sub)


# ------------------------------------------------------- subscription items


@route("GET", "/v1/subscription_items")
def list_items(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = dict(params)
    sub_id = p.get("subscription")
    if not sub_id:
        raise StripeError(
            400,
            "Missing required param: subscription.",
            code="parameter_missing",
            param="subscription",
        )
    sub = ctx.store.require("subscription", sub_id, "subscription")
    return list_response(
        ctx,
        "subscription_item",
        params,
        {"subscription": Str(required=True)},
        f"/v1/subscription_items?subscription={sub_id}",
        items=billing.items_of(ctx.store, sub),
    )


route("GET", "/v1/subscription_items/<item_id>")(retrieve_stored("subscription_item"))


@route("POST", "/v1/subscription_items")
def create_item(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            **ITEM_FIELDS,
            "subscription": Str(required=True),
            "price": Str(required=True),
            "proration_behavior": PRORATION,
            "payment_behavior": PAYMENT_BEHAVIOR,
            "proration_date": Int(),
        },
    )
    sub = ctx.store.require("subscription", p["subscription"], "subscription")
    subscription_requests.change_one_item(
        ctx,
        sub,
        {"price": p["price"], "quantity": p.get("quantity"), "metadata": p.get("metadata")},
        p.get("proration_behavior"),
    )
    return ctx.render(billing.items_of(ctx.store, sub)[-1])


@route("POST", "/v1/subscription_items/<item_id>")
def update_item(ctx: Ctx, params: dict[str, Any], item_id: str) -> dict[str, Any]:
    item = ctx.store.require("subscription_item", item_id)
    p = validate(
        params,
        {
            **ITEM_FIELDS,
            "proration_behavior": PRORATION,
            "payment_behavior": PAYMENT_BEHAVIOR,
            "proration_date": Int(),
            "off_session": Bool(),
        },
    )
    sub = ctx.store.require("subscription", item["subscription"])
    subscription_requests.change_one_item(
        ctx,
        sub,
        {"id": item_id, **{k: p[k] for k in ("price", "quantity", "metadata") if k in p}},
        p.get("proration_behavior"),
    )
    return ctx.render(item)


@route("DELETE", "/v1/subscription_items/<item_id>")
def delete_item(ctx: Ctx, params: dict[str, Any], item_id: str) -> dict[str, Any]:
    item = ctx.store.require("subscription_item", item_id)
    p = validate(
        params, {"proration_behavior": PRORATION, "proration_date": Int(), "clear_usage": Bool()}
    )
    sub = ctx.store.require("subscription", item["subscription"])
    subscription_requests.change_one_item(
        ctx, sub, {"id": item_id, "deleted": True}, p.get("proration_behavior")
    )
    return {"id": item_id, "object": "subscription_item", "deleted": True}
