"""Billing portal sessions (and a default portal configuration)."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..ids import new_id
from ..routes import route
from ..timeutil import wall_now
from ..wire import AnyVal, Arr, Obj, Str, bad_state, validate
from .common import list_response, retrieve_stored

FLOW_DATA = Obj(
    {
        "type": Str(
            required=True,
            enum=[
                "payment_method_update",
                "subscription_cancel",
                "subscription_update",
                "subscription_update_confirm",
            ],
        ),
        "after_completion": Obj(
            {
                "type": Str(
                    required=True, enum=["hosted_confirmation", "portal_homepage", "redirect"]
                ),
                "redirect": Obj({"return_url": Str(required=True)}),
                "hosted_confirmation": Obj({"custom_message": Str()}),
            }
        ),
        "subscription_cancel": Obj({"subscription": Str(required=True), "retention": AnyVal()}),
        "subscription_update": Obj({"subscription": Str(required=True)}),
        "subscription_update_confirm": Obj(
            {
                "subscription": Str(required=True),
                "items": Arr(
                    Obj({"id": Str(required=True), "price": Str(), "quantity": AnyVal()}),
                    required=True,
                ),
                "discounts": AnyVal(),
            }
        ),
    }
)


def default_configuration(ctx: Ctx) -> dict[str, Any]:
    for conf in ctx.store.all("billing_portal.configuration"):
        if conf["is_default"]:
            return conf
    now = wall_now()
    conf = {
        "id": new_id("bpc"),
        "object": "billing_portal.configuration",
        "active": True,
        "application": None,
        "business_profile": {
            "headline": None,
            "privacy_policy_url": None,
            "terms_of_service_url": None,
        },
        "created": now,
        "default_return_url": None,
        "features": {
            "customer_update": {"allowed_updates": ["email"], "enabled": True},
            "invoice_history": {"enabled": True},
            "payment_method_update": {"enabled": True},
            "subscription_cancel": {
                "cancellation_reason": {"enabled": False, "options": []},
                "enabled": True,
                "mode": "at_period_end",
                "proration_behavior": "none",
            },
            "subscription_update": {
                "default_allowed_updates": ["price"],
                "enabled": True,
                "proration_behavior": "create_prorations",
                "products": [],
            },
        },
        "is_default": True,
        "livemode": False,
        "login_page": {"enabled": False, "url": None},
        "metadata": {},
        "name": None,
        "updated": now,
    }
    ctx.store.insert(conf)
    return conf


def _flow(p: dict[str, Any] | None) -> dict[str, Any] | None:
    if not p:
        return None
    after = p.get("after_completion") or {"type": "portal_homepage"}
    return {
        "type": p["type"],
        "after_completion": {
            "type": after["type"],
            "hosted_confirmation": (
                {"custom_message": (after.get("hosted_confirmation") or {}).get("custom_message")}
                if after["type"] == "hosted_confirmation"
                else None
            ),
            "redirect": (
                {"return_url": after["redirect"]["return_url"]}
                if after["type"] == "redirect" and after.get("redirect")
                else None
            ),
        },
        "subscription_cancel": (
            {"retention": None, "subscription": p["subscription_cancel"]["subscription"]}
            if p.get("subscription_cancel")
            else None
        ),
        "subscription_update": (
            {"subscription": p["subscription_update"]["subscription"]}
            if p.get("subscription_update")
            else None
        ),
        "subscription_update_confirm": (
            {
                "discounts": None,
                "items": [
                    {"id": i["id"], "price": i.get("price"), "quantity": i.get("quantity")}
                    for i in p["subscription_update_confirm"]["items"]
                ],
                "subscription": p["subscription_update_confirm"]["subscription"],
            }
            if p.get("subscription_update_confirm")
            else None
        ),
    }


@route("POST", "/v1/billing_portal/sessions")
def create_portal_session(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            "customer": Str(required=True),
            "return_url": Str(),
            "configuration": Str(),
            "flow_data": FLOW_DATA,
            "locale": Str(),
            "on_behalf_of": Str(),
            "customer_account": Str(),
        },
    )
    customer = ctx.store.require("customer", p["customer"], "customer")
    if p.get("configuration"):
        conf = ctx.store.require(
            "billing_portal.configuration", p["configuration"], "configuration"
        )
    else:
        conf = default_configuration(ctx)
    flow = p.get("flow_data")
    if flow:
        key = flow["type"]
        if key != "payment_method_update" and not flow.get(key):
            raise bad_state(f"Missing required param: flow_data[{key}].", f"flow_data[{key}]")
        if flow.get(key):
            sub_id = flow[key]["subscription"]
            sub = ctx.store.require("subscription", sub_id, f"flow_data[{key}][subscription]")
            if sub["customer"] != customer["id"]:
                raise bad_state(
                    "The subscription does not belong to this customer.",
                    f"flow_data[{key}][subscription]",
                )
    session_id = new_id("bps")
    session = {
        "id": session_id,
        "object": "billing_portal.session",
        "configuration": conf["id"],
        "created": ctx.now_for(customer["id"]),
        "customer": customer["id"],
        "customer_account": None,
        "flow": _flow(flow),
        "livemode": False,
        "locale": p.get("locale"),
        "on_behalf_of": p.get("on_behalf_of"),
        "return_url": p.get("return_url") or conf.get("default_return_url"),
        "url": ctx.url(f"/portal/{session_id}"),
    }
    ctx.store.insert(session)
    return ctx.render(session)


@route("GET", "/v1/billing_portal/configurations")
def list_configurations(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    default_configuration(ctx)
    return list_response(
        ctx,
        "billing_portal.configuration",
        params,
        {"active": AnyVal(), "is_default": AnyVal()},
        "/v1/billing_portal/configurations",
    )


route("GET", "/v1/billing_portal/configurations/<conf_id>")(
    retrieve_stored("billing_portal.configuration")
)
