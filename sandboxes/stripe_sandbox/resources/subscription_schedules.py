"""Subscription schedules: create, retrieve, update, cancel, release, list."""

from __future__ import annotations

from typing import Any

from ..billing import schedules
from ..context import Ctx
from ..params import AnyVal, Arr, Bool, Int, Meta, Obj, Str, validate
from ..routes import route
from .common import list_response, matching_params, retrieve_stored

PHASE_ITEM = Obj(
    {
        "price": Str(),
        "quantity": Int(min=0),
        "metadata": Meta(),
        "price_data": AnyVal(),
        "discounts": AnyVal(),
        "tax_rates": AnyVal(),
    }
)
PHASE = Obj(
    {
        "items": Arr(PHASE_ITEM, required=True),
        "iterations": Int(min=1),
        "end_date": Int(),
        "metadata": Meta(),
        "proration_behavior": Str(enum=["always_invoice", "create_prorations", "none"]),
        **{
            k: AnyVal()
            for k in [
                "add_invoice_items",
                "automatic_tax",
                "billing_cycle_anchor",
                "collection_method",
                "currency",
                "default_payment_method",
                "default_tax_rates",
                "description",
                "discounts",
                "duration",
                "invoice_settings",
                "on_behalf_of",
                "transfer_data",
                "trial",
                "trial_end",
                "billing_thresholds",
                "application_fee_percent",
            ]
        },
    }
)


@route("POST", "/v1/subscription_schedules")
def create_schedule(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            "customer": Str(),
            "from_subscription": Str(),
            "start_date": Int(literals=["now"]),
            "end_behavior": Str(enum=["cancel", "none", "release", "renew"]),
            "phases": Arr(PHASE),
            "metadata": Meta(),
            "default_settings": AnyVal(),
            "billing_mode": AnyVal(),
        },
    )
    return ctx.render(schedules.new_schedule(ctx, p))


route("GET", "/v1/subscription_schedules/<sched_id>")(retrieve_stored(schedules.KIND))


@route("POST", "/v1/subscription_schedules/<sched_id>")
def update_schedule(ctx: Ctx, params: dict[str, Any], sched_id: str) -> dict[str, Any]:
    schedule = ctx.store.require(schedules.KIND, sched_id)
    p = validate(
        params,
        {
            "metadata": Meta(),
            "end_behavior": Str(enum=["cancel", "none", "release", "renew"]),
            "default_settings": AnyVal(),
            "proration_behavior": AnyVal(),
        },
    )
    schedules.update_schedule(ctx, schedule, p)
    return ctx.render(schedule)


@route("POST", "/v1/subscription_schedules/<sched_id>/cancel")
def cancel_schedule(ctx: Ctx, params: dict[str, Any], sched_id: str) -> dict[str, Any]:
    schedule = ctx.store.require(schedules.KIND, sched_id)
    p = validate(params, {"invoice_now": Bool(), "prorate": Bool()})
    schedules.cancel_schedule(ctx, schedule, bool(p.get("invoice_now")), bool(p.get("prorate")))
    return ctx.render(schedule)


@route("POST", "/v1/subscription_schedules/<sched_id>/release")
def release_schedule(ctx: Ctx, params: dict[str, Any], sched_id: str) -> dict[str, Any]:
    schedule = ctx.store.require(schedules.KIND, sched_id)
    validate(params, {"preserve_cancel_date": Bool()})
    schedules.release_schedule(ctx, schedule)
    return ctx.render(schedule)


@route("GET", "/v1/subscription_schedules")
def list_schedules(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    keep = matching_params("customer")

    return list_response(
        ctx,
        schedules.KIND,
        params,
        {
            "customer": Str(),
            "scheduled": Bool(),
            **{k: AnyVal() for k in ("canceled_at", "completed_at", "released_at")},
        },
        "/v1/subscription_schedules",
        keep,
    )
