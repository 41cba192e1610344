"""Products and prices: creation, updates, lookup keys, and the legacy ``plan`` view."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from ..context import Ctx
from ..errors import StripeError, bad_state, missing
from ..ids import new_id
from ..params import apply_metadata
from ..store import Store, renderer, strip_private
from ..timeutil import wall_now


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


def claim_lookup_key(ctx: Ctx, key: str, transfer: bool, price_id: str) -> None:
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
        claim_lookup_key(ctx, p["lookup_key"], bool(p.get("transfer_lookup_key")), price_id)
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


CURRENCY_RE = re.compile(r"^[a-z]{3}$")


def check_currency(value: str, param: str = "currency") -> str:
    cur = value.lower()
    if not CURRENCY_RE.match(cur):
        raise StripeError(
            400,
            f"Invalid currency: {value}. Stripe currently supports these "
            "currencies: usd, eur, gbp, ... (any ISO 4217 code)",
            code="parameter_invalid_string",
            param=param,
        )
    return cur


def update_product(ctx: Ctx, product: dict[str, Any], p: dict[str, Any]) -> None:
    before = ctx.render(product)
    for key, value in p.items():
        if key == "metadata":
            product["metadata"] = apply_metadata(product["metadata"], value)
        elif key == "default_price":
            price = ctx.store.require("price", value, "default_price")
            if price["product"] != product["id"]:
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


def delete_product(ctx: Ctx, product: dict[str, Any]) -> None:
    if any(pr["product"] == product["id"] for pr in ctx.store.all("price")):
        raise bad_state(
            "This product cannot be deleted because it has one or more user-created prices."
        )
    ctx.emit("product.deleted", product)
    product["_deleted"] = True


def update_price(ctx: Ctx, price: dict[str, Any], p: dict[str, Any]) -> None:
    before = ctx.render(price)
    if "lookup_key" in p:
        if p["lookup_key"]:
            claim_lookup_key(ctx, p["lookup_key"], bool(p.get("transfer_lookup_key")), price["id"])
        price["lookup_key"] = p["lookup_key"]
    for key in ("active", "nickname", "tax_behavior"):
        if key in p:
            price[key] = p[key]
    if "metadata" in p:
        price["metadata"] = apply_metadata(price["metadata"], p["metadata"])
    ctx.emit_updated("price.updated", price, before)


def delete_plan(ctx: Ctx, price: dict[str, Any]) -> None:
    """``DELETE /v1/plans/:id`` (the legacy plans API): the recurring price goes away, with
    ``plan.deleted`` and ``price.deleted``; subscriptions already on it keep it."""
    if price["type"] != "recurring":
        raise bad_state("Only a recurring price is a plan.")
    ctx.emit("plan.deleted", plan_from_price(price))
    ctx.emit("price.deleted", price)
    price["_deleted"] = True
