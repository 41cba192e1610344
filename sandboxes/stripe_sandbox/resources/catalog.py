"""Products and prices."""

from __future__ import annotations

from typing import Any

from ..billing import catalog
from ..context import Ctx
from ..errors import StripeError
from ..params import AnyVal, Arr, Bool, Int, Meta, Obj, Spec, Str, validate
from ..routes import route
from .common import list_response, retrieve_stored

RECURRING: dict[str, Spec] = {
    "interval": Str(required=True, enum=["day", "week", "month", "year"]),
    "interval_count": Int(min=1, max=365),
    "usage_type": Str(enum=["licensed", "metered"]),
    "trial_period_days": Int(min=0, max=730),
    "meter": Str(),
    "aggregate_usage": Str(enum=["last_during_period", "last_ever", "max", "sum"]),
}

PRICE_DATA: dict[str, Spec] = {
    "currency": Str(required=True),
    "unit_amount": Int(min=0),
    "unit_amount_decimal": Str(),
    "recurring": Obj(RECURRING),
    "tax_behavior": Str(enum=["exclusive", "inclusive", "unspecified"]),
    "currency_options": AnyVal(),
    "custom_unit_amount": AnyVal(),
    "metadata": Meta(),
}

PRODUCT_FIELDS: dict[str, Spec] = {
    "name": Str(max_length=250),
    "active": Bool(),
    "description": Str(unsettable=True, max_length=40000),
    "metadata": Meta(),
    "images": Arr(Str(), unsettable=True, max_items=8),
    "marketing_features": Arr(Obj({"name": Str(required=True)}), unsettable=True, max_items=15),
    "package_dimensions": AnyVal(),
    "shippable": Bool(),
    "statement_descriptor": Str(unsettable=True, max_length=22),
    "tax_code": Str(unsettable=True),
    "unit_label": Str(unsettable=True, max_length=12),
    "url": Str(unsettable=True),
    "tax_details": AnyVal(),
}

# ------------------------------------------------------------ products


@route("POST", "/v1/products")
def create_product(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            **PRODUCT_FIELDS,
            "name": Str(required=True, max_length=250),
            "id": Str(),
            "default_price_data": Obj(PRICE_DATA),
            "type": Str(enum=["good", "service"]),
        },
    )
    product = catalog.new_product(ctx, p)
    if p.get("default_price_data"):
        price = catalog.new_price(
            ctx, {**p["default_price_data"], "product": product["id"]}, "default_price_data"
        )
        product["default_price"] = price["id"]
    return ctx.render(product)


route("GET", "/v1/products/<product_id>")(retrieve_stored("product"))


@route("POST", "/v1/products/<product_id>")
def update_product(ctx: Ctx, params: dict[str, Any], product_id: str) -> dict[str, Any]:
    product = ctx.store.require("product", product_id)
    p = validate(params, {**PRODUCT_FIELDS, "default_price": Str()})
    catalog.update_product(ctx, product, p)
    return ctx.render(product)


@route("GET", "/v1/products")
def list_products(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        if p.get("active") is not None and o["active"] != p["active"]:
            return False
        if p.get("ids") and o["id"] not in p["ids"]:
            return False
        if p.get("shippable") is not None and o["shippable"] != p["shippable"]:
            return False
        return not (p.get("url") and o["url"] != p["url"])

    return list_response(
        ctx,
        "product",
        params,
        {"active": Bool(), "ids": Arr(Str()), "shippable": Bool(), "url": Str()},
        "/v1/products",
        keep,
    )


@route("DELETE", "/v1/products/<product_id>")
def delete_product(ctx: Ctx, params: dict[str, Any], product_id: str) -> dict[str, Any]:
    validate(params, {})
    product = ctx.store.require("product", product_id)
    catalog.delete_product(ctx, product)
    return {"id": product_id, "object": "product", "deleted": True}


# -------------------------------------------------------------- prices


PRICE_CREATE: dict[str, Spec] = {
    **PRICE_DATA,
    "product": Str(),
    "product_data": Obj(
        {
            "name": Str(required=True),
            "active": Bool(),
            "metadata": Meta(),
            "id": Str(),
            "statement_descriptor": Str(),
            "tax_code": Str(),
            "unit_label": Str(),
            "tax_details": AnyVal(),
        }
    ),
    "lookup_key": Str(max_length=200),
    "transfer_lookup_key": Bool(),
    "nickname": Str(),
    "active": Bool(),
    "billing_scheme": Str(enum=["per_unit", "tiered"]),
    "tiers": AnyVal(),
    "tiers_mode": Str(enum=["graduated", "volume"]),
    "transform_quantity": AnyVal(),
}


@route("POST", "/v1/prices")
def create_price(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(params, PRICE_CREATE)
    if p.get("product") and p.get("product_data"):
        raise StripeError(
            400,
            "You may only specify one of these parameters: product, product_data.",
            code="parameters_exclusive",
            param="product",
        )
    return ctx.render(catalog.new_price(ctx, p))


route("GET", "/v1/prices/<price_id>")(retrieve_stored("price"))


@route("POST", "/v1/prices/<price_id>")
def update_price(ctx: Ctx, params: dict[str, Any], price_id: str) -> dict[str, Any]:
    price = ctx.store.require("price", price_id)
    p = validate(
        params,
        {
            "active": Bool(),
            "metadata": Meta(),
            "nickname": Str(unsettable=True),
            "lookup_key": Str(unsettable=True, max_length=200),
            "transfer_lookup_key": Bool(),
            "tax_behavior": Str(enum=["exclusive", "inclusive", "unspecified"]),
            "currency_options": AnyVal(),
        },
    )
    catalog.update_price(ctx, price, p)
    return ctx.render(price)


@route("GET", "/v1/prices")
def list_prices(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        if p.get("active") is not None and o["active"] != p["active"]:
            return False
        if p.get("product") and o["product"] != p["product"]:
            return False
        if p.get("type") and o["type"] != p["type"]:
            return False
        if p.get("currency") and o["currency"] != p["currency"].lower():
            return False
        if p.get("lookup_keys") and o["lookup_key"] not in p["lookup_keys"]:
            return False
        rec = p.get("recurring")
        if rec:
            if not o["recurring"]:
                return False
            if rec.get("interval") and o["recurring"]["interval"] != rec["interval"]:
                return False
            if rec.get("usage_type") and o["recurring"]["usage_type"] != rec["usage_type"]:
                return False
        return True

    return list_response(
        ctx,
        "price",
        params,
        {
            "active": Bool(),
            "product": Str(),
            "type": Str(enum=["one_time", "recurring"]),
            "currency": Str(),
            "lookup_keys": Arr(Str(), max_items=10),
            "recurring": Obj(
                {
                    "interval": Str(enum=["day", "week", "month", "year"]),
                    "usage_type": Str(enum=["licensed", "metered"]),
                    "meter": Str(),
                }
            ),
        },
        "/v1/prices",
        keep,
    )


@route("GET", "/v1/plans/<plan_id>")
def retrieve_plan(ctx: Ctx, params: dict[str, Any], plan_id: str) -> dict[str, Any]:
    """A recurring price in the legacy ``plan`` shape."""
    validate(params, {})
    price = ctx.store.require("price", plan_id)
    if price["type"] != "recurring":
        raise StripeError(404, f"No such plan: '{plan_id}'", code="resource_missing", param="id")
    return catalog.plan_from_price(price)


@route("DELETE", "/v1/plans/<plan_id>")
def delete_plan(ctx: Ctx, params: dict[str, Any], plan_id: str) -> dict[str, Any]:
    validate(params, {})
    catalog.delete_plan(ctx, ctx.store.require("price", plan_id))
    return {"id": plan_id, "object": "plan", "deleted": True}
