"""Billing portal sessions (and a default portal configuration)."""

from __future__ import annotations

from typing import Any

from ..billing import portal
from ..context import Ctx
from ..params import AnyVal, Arr, Obj, Str, validate
from ..routes import route
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
    session = portal.new_portal_session(ctx, customer, p)
    return ctx.render(session)


@route("GET", "/v1/billing_portal/configurations")
def list_configurations(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    portal.default_configuration(ctx)
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
