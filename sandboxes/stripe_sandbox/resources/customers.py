"""Customers (create, retrieve, update, delete, list, search)."""

from __future__ import annotations

from typing import Any

from ..billing import customers
from ..context import Ctx
from ..params import AnyVal, Arr, Int, Meta, Obj, Spec, Str, validate
from ..routes import route
from .common import list_response

ADDRESS = Obj(
    {
        k: Str(unsettable=True)
        for k in ("city", "country", "line1", "line2", "postal_code", "state")
    },
    unsettable=True,
)

CUSTOMER_FIELDS: dict[str, Spec] = {
    "email": Str(unsettable=True, max_length=512),
    "name": Str(unsettable=True, max_length=256),
    "description": Str(unsettable=True, max_length=350),
    "phone": Str(unsettable=True, max_length=20),
    "metadata": Meta(),
    "address": ADDRESS,
    "shipping": AnyVal(),
    "payment_method": Str(),
    "invoice_settings": Obj(
        {
            "default_payment_method": Str(unsettable=True),
            "custom_fields": AnyVal(),
            "footer": Str(unsettable=True),
            "rendering_options": AnyVal(),
        }
    ),
    "preferred_locales": Arr(Str(), unsettable=True),
    "tax_exempt": Str(unsettable=True, enum=["exempt", "none", "reverse"]),
    "tax": AnyVal(),
    "tax_id_data": AnyVal(),
    "balance": Int(),
    "invoice_prefix": Str(),
    "next_invoice_sequence": Int(min=1),
    "source": Str(),
    "coupon": Str(),
    "promotion_code": Str(),
    "cash_balance": AnyVal(),
    "individual_name": Str(unsettable=True),
    "business_name": Str(unsettable=True),
}


@route("POST", "/v1/customers")
def create_customer(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(params, {**CUSTOMER_FIELDS, "test_clock": Str()})
    return ctx.render(customers.new_customer(ctx, p))


@route("GET", "/v1/customers/search")
def search_customers(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(params, {"query": Str(required=True), "limit": Int(min=1, max=100), "page": Str()})
    found = customers.search_customers(ctx, p["query"])
    limit = p.get("limit") or 10
    return {
        "object": "search_result",
        "data": [ctx.render(c) for c in found[:limit]],
        "has_more": len(found) > limit,
        "next_page": None,
        "url": "/v1/customers/search",
    }


@route("GET", "/v1/customers/<customer_id>")
def retrieve_customer(ctx: Ctx, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
    """A deleted customer is still retrieved (as ``{"id", "object", "deleted": true}``)."""
    validate(params, {})
    customer = ctx.store.get("customer", customer_id) or ctx.store.require("customer", customer_id)
    return ctx.render(customer)


@route("POST", "/v1/customers/<customer_id>")
def update_customer(ctx: Ctx, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
    customer = ctx.store.require("customer", customer_id)
    p = validate(params, {**CUSTOMER_FIELDS, "default_source": Str()})
    customers.update_customer(ctx, customer, p)
    return ctx.render(customer)


@route("DELETE", "/v1/customers/<customer_id>")
def delete_customer(ctx: Ctx, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
    validate(params, {})
    customers.delete_customer(ctx, ctx.store.require("customer", customer_id))
    return {"id": customer_id, "object": "customer", "deleted": True}


@route("GET", "/v1/customers")
def list_customers(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        if p.get("email") is not None and o["email"] != p["email"]:
            return False
        return not (p.get("test_clock") and o["test_clock"] != p["test_clock"])

    return list_response(
        ctx,
        "customer",
        params,
        {"email": Str(max_length=512), "test_clock": Str()},
        "/v1/customers",
        keep,
    )
