"""Subscriptions and subscription items."""

from __future__ import annotations

from typing import Any

from .. import billing, cards
from ..context import Ctx
from ..routes import route
from ..timeutil import period_containing
from ..wire import (
    AnyVal,
    Arr,
    Bool,
    Int,
    Meta,
    Obj,
    Spec,
    Str,
    StripeError,
    apply_metadata,
    bad_state,
    validate,
)
from .common import list_response, retrieve_stored
from .payments import payment_method_for

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


def resolve_price(
    ctx: Ctx, price_id: str, param: str, currency: str | None = None
) -> dict[str, Any]:
    price = ctx.store.require("price", price_id, param)
    if not price["active"]:
        raise StripeError(
            400,
            "The price specified is inactive. This field only accepts active prices.",
            param=param,
        )
    if price["type"] != "recurring":
        raise StripeError(
            400,
            "The price specified is set to `type=one_time` but this field "
            "only accepts prices with `type=recurring`.",
            param=param,
        )
    if currency and price["currency"] != currency:
        raise StripeError(
            400,
            f"The price specified uses currency {price['currency']} but "
            f"this subscription uses {currency}.",
            param=param,
        )
    return price


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
    customer = ctx.store.require("customer", p["customer"], "customer")
    if not p["items"]:
        raise StripeError(
            400, "Missing required param: items.", code="parameter_missing", param="items"
        )
    entries = []
    currency = None
    for i, item in enumerate(p["items"]):
        if not item.get("price"):
            raise StripeError(
                400,
                f"Missing required param: items[{i}][price].",
                code="parameter_missing",
                param=f"items[{i}][price]",
            )
        price = resolve_price(ctx, item["price"], f"items[{i}][price]", currency)
        currency = price["currency"]
        entries.append((price, item.get("quantity") or 1, apply_metadata({}, item.get("metadata"))))
    now = ctx.now_for(customer["id"])
    trial_end = None
    if p.get("trial_end") not in (None, "now"):
        trial_end = int(p["trial_end"])
        if trial_end <= now:
            raise StripeError(
                400,
                "Invalid timestamp: must be an integer Unix timestamp in the future.",
                param="trial_end",
            )
    elif p.get("trial_period_days"):
        trial_end = now + p["trial_period_days"] * billing.DAY
    elif p.get("trial_from_plan") and entries[0][0]["recurring"].get("trial_period_days"):
        trial_end = now + entries[0][0]["recurring"]["trial_period_days"] * billing.DAY
    pm_id = p.get("default_payment_method")
    if pm_id:
        pm = ctx.store.require("payment_method", pm_id, "default_payment_method")
        if pm.get("customer") != customer["id"]:
            raise bad_state(
                "The payment method must be attached to the customer.", "default_payment_method"
            )
    behavior = p.get("payment_behavior") or "allow_incomplete"
    if behavior == "error_if_incomplete" and not trial_end:
        charge_pm = payment_method_for(ctx, customer["id"], pm_id)
        if charge_pm is None:
            raise StripeError(
                400,
                "This customer has no attached payment source or default "
                "payment method. Please consider adding a default payment "
                "method.",
                param=None,
            )
        if not cards.charge_succeeds(charge_pm["_behavior"]):
            raise StripeError(
                402,
                cards.DECLINED,
                type="card_error",
                code="card_declined",
                decline_code="generic_decline",
            )
    sub = billing.create_subscription(
        ctx,
        customer,
        entries,
        trial_end=trial_end,
        metadata=apply_metadata({}, p.get("metadata")),
        description=p.get("description"),
        default_payment_method=pm_id,
        payment_behavior=behavior,
        collection_method=p.get("collection_method") or "charge_automatically",
        days_until_due=p.get("days_until_due"),
        cancel_at_period_end=bool(p.get("cancel_at_period_end")),
        cancel_at=p.get("cancel_at"),
        trial_settings=p.get("trial_settings"),
    )
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
    before = ctx.render(sub)
    if sub["status"] in billing.ENDED:
        allowed = {"metadata", "cancellation_details"}
        extra = sorted(set(p) - allowed)
        if extra:
            raise bad_state(
                "A canceled subscription can only update its cancellation_details and metadata.",
                extra[0],
            )
    apply_update(ctx, sub, p)
    ctx.emit_updated("customer.subscription.updated", sub, before)
    return ctx.render(sub)


def apply_update(ctx: Ctx, sub: dict[str, Any], p: dict[str, Any]) -> None:
    now = ctx.now_for(sub["customer"])
    if "metadata" in p:
        sub["metadata"] = apply_metadata(sub["metadata"], p["metadata"])
    if "description" in p:
        sub["description"] = p["description"]
    if "default_payment_method" in p:
        pm_id = p["default_payment_method"]
        if pm_id:
            pm = ctx.store.require("payment_method", pm_id, "default_payment_method")
            if pm.get("customer") != sub["customer"]:
                raise bad_state(
                    "The payment method must be attached to the customer.", "default_payment_method"
                )
        sub["default_payment_method"] = pm_id
    if "collection_method" in p:
        sub["collection_method"] = p["collection_method"]
    if "days_until_due" in p:
        sub["days_until_due"] = p["days_until_due"]
    if p.get("trial_settings"):
        sub["trial_settings"] = {"end_behavior": dict(p["trial_settings"]["end_behavior"])}
    if p.get("cancellation_details"):
        sub["cancellation_details"] = {**sub["cancellation_details"], **p["cancellation_details"]}
    if p.get("items"):
        billing.change_items(
            ctx,
            sub,
            p["items"],
            p.get("proration_behavior") or "create_prorations",
            lambda pid, param: resolve_price(ctx, pid, param, sub["currency"]),
        )
    if "cancel_at_period_end" in p and p["cancel_at_period_end"] is not None:
        billing.set_cancel_at_period_end(ctx, sub, p["cancel_at_period_end"])
    if "cancel_at" in p:
        value = p["cancel_at"]
        if value is None:
            billing.set_cancel_at_period_end(ctx, sub, False)
        else:
            end = billing.current_period(ctx, sub)[1]
            at = end if value in ("max_period_end", "min_period_end") else int(value)
            if at <= now:
                raise StripeError(
                    400, "Invalid timestamp: must be in the future.", param="cancel_at"
                )
            sub["cancel_at"] = at
            sub["cancel_at_period_end"] = at == end
            sub["canceled_at"] = now
            sub["cancellation_details"]["reason"] = "cancellation_requested"
    if "pause_collection" in p:
        value = p["pause_collection"]
        if value in ("", None):
            was_paused = sub.get("pause_collection") is not None
            sub["pause_collection"] = None
            if was_paused:
                ctx.emit("customer.subscription.resumed", sub)
        else:
            sub["pause_collection"] = {
                "behavior": value["behavior"],
                "resumes_at": value.get("resumes_at"),
            }
            ctx.emit("customer.subscription.paused", sub)
    if "trial_end" in p and p["trial_end"] is not None:
        if p["trial_end"] == "now":
            if sub["status"] == "trialing":
                billing.end_trial_now(ctx, sub, now)
        else:
            trial_end = int(p["trial_end"])
            if trial_end <= now:
                raise StripeError(
                    400,
                    "Invalid timestamp: must be an integer Unix timestamp in the future.",
                    param="trial_end",
                )
            if sub["status"] not in ("trialing", "active"):
                raise bad_state(
                    "Only active or trialing subscriptions can get a trial.", "trial_end"
                )
            if sub["status"] == "active":
                sub["trial_start"] = now
            sub["status"] = "trialing"
            sub["trial_end"] = trial_end
            sub["billing_cycle_anchor"] = trial_end
            for it in billing.items_of(ctx.store, sub):
                if sub["trial_start"] == now:
                    it["current_period_start"] = now
                it["current_period_end"] = trial_end
            if sub["cancel_at_period_end"]:
                sub["cancel_at"] = trial_end
    if p.get("billing_cycle_anchor") == "now" and sub["status"] in ("active", "past_due"):
        billing.restart_cycle(ctx, sub, now)


# ------------------------------------------------------------ cancel/resume


@route("DELETE", "/v1/subscriptions/<sub_id>")
def cancel_subscription(ctx: Ctx, params: dict[str, Any], sub_id: str) -> dict[str, Any]:
    sub = ctx.store.require("subscription", sub_id)
    p = validate(
        params,
        {"invoice_now": Bool(), "prorate": Bool(), "cancellation_details": CANCELLATION_DETAILS},
    )
    if sub["status"] in billing.ENDED:
        raise bad_state(f"This subscription has already been canceled ({sub_id}).")
    details = p.get("cancellation_details") or {}
    billing.cancel_now(
        ctx,
        sub,
        reason="cancellation_requested",
        comment=details.get("comment"),
        feedback=details.get("feedback"),
        invoice_now=bool(p.get("invoice_now")),
        prorate=bool(p.get("prorate")),
    )
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
    if sub["status"] != "paused":
        raise bad_state(
            "Subscription must be in `paused` status to be resumed. "
            f"Current status: `{sub['status']}`."
        )
    before = ctx.render(sub)
    now = ctx.now_for(sub["customer"])
    sub["status"] = "active"
    if (p.get("billing_cycle_anchor") or "now") == "now":
        billing.restart_cycle(ctx, sub, now)
    else:
        items = billing.items_of(ctx.store, sub)
        rec = billing.price_of(ctx, items[0])["recurring"]
        start, end = period_containing(
            sub["billing_cycle_anchor"], rec["interval"], rec["interval_count"], now
        )
        for it in items:
            it["current_period_start"] = start
            it["current_period_end"] = end
        lines = billing.item_lines(ctx, sub, (start, end))
        billing.bill_and_set_status(ctx, sub, lines, "subscription_update", (now, now))
    ctx.emit("customer.subscription.resumed", sub)
    ctx.emit_updated("customer.subscription.updated", sub, before)
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


def _item_change(
    ctx: Ctx, sub: dict[str, Any], change: dict[str, Any], proration: str | None
) -> None:
    before = ctx.render(sub)
    if sub["status"] in billing.ENDED:
        raise bad_state("A canceled subscription can not be changed.")
    billing.change_items(
        ctx,
        sub,
        [change],
        proration or "create_prorations",
        lambda pid, param: resolve_price(ctx, pid, "price", sub["currency"]),
    )
    ctx.emit_updated("customer.subscription.updated", sub, before)


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
    _item_change(
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
    _item_change(
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
    _item_change(ctx, sub, {"id": item_id, "deleted": True}, p.get("proration_behavior"))
    return {"id": item_id, "object": "subscription_item", "deleted": True}
