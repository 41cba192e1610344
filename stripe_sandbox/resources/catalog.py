"""Products and prices."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from ..context import Ctx
from ..ids import new_id
from ..routes import route
from ..store import Store, renderer, strip_private
from ..timeutil import wall_now
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
    missing,
    validate,
)
from .common import check_currency, list_response, retrieve_stored

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


def new_product(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    now = wall_now()
    product_id = p.get("id") or new_id("prod")
    if ctx.store.find(product_id) is not None:
        raise StripeError(
            400, "Product already exists.", code="resource_already_exists", param="id"
        )
    product = {
        "id": product_id,
        "object": "product",
        "active": p.get("active", True) if p.get("active") is not None else True,
        "created": now,
        "default_price": None,
        "description": p.get("description"),
        "images": p.get("images") or [],
        "livemode": False,
        "marketing_features": p.get("marketing_features") or [],
        "metadata": apply_metadata({}, p.get("metadata")),
        "name": p["name"],
        "package_dimensions": p.get("package_dimensions"),
        "shippable": p.get("shippable"),
        "statement_descriptor": p.get("statement_descriptor"),
        "tax_code": p.get("tax_code"),
        "type": "service",
        "unit_label": p.get("unit_label"),
        "updated": now,
        "url": p.get("url"),
    }
    ctx.store.insert(product)
    ctx.emit("product.created", product)
    return product


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
    product = new_product(ctx, p)
    if p.get("default_price_data"):
        price = new_price(
            ctx, {**p["default_price_data"], "product": product["id"]}, "default_price_data"
        )
        product["default_price"] = price["id"]
    return ctx.render(product)


route("GET", "/v1/products/<product_id>")(retrieve_stored("product"))


@route("POST", "/v1/products/<product_id>")
def update_product(ctx: Ctx, params: dict[str, Any], product_id: str) -> dict[str, Any]:
    product = ctx.store.require("product", product_id)
    p = validate(params, {**PRODUCT_FIELDS, "default_price": Str()})
    before = ctx.render(product)
    for key, value in p.items():
        if key == "metadata":
            product["metadata"] = apply_metadata(product["metadata"], value)
        elif key == "default_price":
            price = ctx.store.require("price", value, "default_price")
            if price["product"] != product_id:
                raise bad_state("The default price must belong to this product.", "default_price")
            product["default_price"] = value
        elif key in ("images", "marketing_features"):
            product[key] = value or []
        elif key == "name" and not value:
            raise missing("name")
        else:
            product[key] = value
    product["updated"] = wall_now()
    ctx.emit_updated("product.updated", product, before)
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
    if any(pr["product"] == product_id for pr in ctx.store.all("price")):
        raise bad_state(
            "This product cannot be deleted because it has one or more user-created prices."
        )
    ctx.emit("product.deleted", product)
    product["_deleted"] = True
    return {"id": product_id, "object": "product", "deleted": True}


# -------------------------------------------------------------- prices


@renderer("price")
def render_price(store: Store, price: dict[str, Any]) -> dict[str, Any]:
    return strip_private(price)


def plan_from_price(price: dict[str, Any]) -> dict[str, Any]:
    """The legacy ``plan`` view of a recurring price (as on subscription items)."""
    recurring = price.get("recurring") or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": False,
        "metadata": dict(price["metadata"]),
        "meter": None,
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type", "licensed"),
    }


def _decimal_amount(p: dict[str, Any], param_prefix: str) -> tuple[int | None, str | None]:
    if p.get("unit_amount") is not None:
        return p["unit_amount"], str(p["unit_amount"])
    if p.get("unit_amount_decimal") is not None:
        try:
            dec = Decimal(p["unit_amount_decimal"])
        except InvalidOperation:
            raise StripeError(
                400,
                f"Invalid decimal: {p['unit_amount_decimal']}",
                code="parameter_invalid_decimal",
                param=f"{param_prefix}unit_amount_decimal",
            ) from None
        amount = int(dec) if dec == dec.to_integral_value() else None
        return amount, p["unit_amount_decimal"]
    if p.get("custom_unit_amount"):
        return None, None
    raise missing(f"{param_prefix}unit_amount")


def _claim_lookup_key(ctx: Ctx, key: str, transfer: bool, price_id: str) -> None:
    for other in ctx.store.all("price"):
        if other["lookup_key"] == key and other["id"] != price_id:
            if not transfer:
                raise StripeError(
                    400,
                    f"A price (`{other['id']}`) already uses that lookup key.",
                    param="lookup_key",
                )
            before = ctx.render(ctx.store.touch(other))
            other["lookup_key"] = None
            ctx.emit_updated("price.updated", other, before)


def new_price(ctx: Ctx, p: dict[str, Any], param_prefix: str = "") -> dict[str, Any]:
    """Create a price from cleaned params (``product`` already set or ``product_data``)."""
    prefix = f"{param_prefix}[" if param_prefix else ""
    product_id = p.get("product")
    if product_id is None and p.get("product_data"):
        product_id = new_product(ctx, p["product_data"])["id"]
    if product_id is None:
        raise missing(f"{param_prefix}[product]" if param_prefix else "product")
    ctx.store.require("product", product_id, f"{prefix}product]" if prefix else "product")
    amount, amount_decimal = _decimal_amount(p, f"{param_prefix}[" if param_prefix else "")
    price_id = new_id("price")
    if p.get("lookup_key"):
        _claim_lookup_key(ctx, p["lookup_key"], bool(p.get("transfer_lookup_key")), price_id)
    recurring = None
    if p.get("recurring"):
        r = p["recurring"]
        recurring = {
            "interval": r["interval"],
            "interval_count": r.get("interval_count") or 1,
            "meter": r.get("meter"),
            "usage_type": r.get("usage_type") or "licensed",
            "trial_period_days": r.get("trial_period_days"),
        }
    price = {
        "id": price_id,
        "object": "price",
        "active": p.get("active") if p.get("active") is not None else True,
        "billing_scheme": p.get("billing_scheme") or "per_unit",
        "created": wall_now(),
        "currency": check_currency(p["currency"], f"{prefix}currency]" if prefix else "currency"),
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": p.get("lookup_key"),
        "metadata": apply_metadata({}, p.get("metadata")),
        "nickname": p.get("nickname"),
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": p.get("tax_behavior") or "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": amount,
        "unit_amount_decimal": amount_decimal,
    }
    ctx.store.insert(price)
    ctx.emit("price.created", price)
    return price


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
    return ctx.render(new_price(ctx, p))


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
    before = ctx.render(price)
    if "lookup_key" in p:
        if p["lookup_key"]:
            _claim_lookup_key(ctx, p["lookup_key"], bool(p.get("transfer_lookup_key")), price_id)
        price["lookup_key"] = p["lookup_key"]
    for key in ("active", "nickname", "tax_behavior"):
        if key in p:
            price[key] = p[key]
    if "metadata" in p:
        price["metadata"] = apply_metadata(price["metadata"], p["metadata"])
    ctx.emit_updated("price.updated", price, before)
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
