"""Customers (create, retrieve, update, delete, list, search)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from ..context import Ctx
from ..ids import new_id
from ..routes import route
from ..wire import (
    AnyVal,
    Arr,
    Int,
    Meta,
    Obj,
    Spec,
    Str,
    StripeError,
    apply_metadata,
    validate,
)
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


def _address(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    return {k: value.get(k) for k in ("city", "country", "line1", "line2", "postal_code", "state")}


def new_customer(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    clock_id = p.get("test_clock")
    if clock_id:
        ctx.store.require("test_helpers.test_clock", clock_id, "test_clock")
    customer: dict[str, Any] = {
        "id": new_id("cus"),
        "object": "customer",
        "address": _address(p.get("address")),
        "balance": p.get("balance") or 0,
        "created": ctx.clock_time(clock_id),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": p.get("description"),
        "discount": None,
        "email": p.get("email"),
        "invoice_prefix": p.get("invoice_prefix") or secrets.token_hex(4).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": apply_metadata({}, p.get("metadata")),
        "name": p.get("name"),
        "next_invoice_sequence": p.get("next_invoice_sequence") or 1,
        "phone": p.get("phone"),
        "preferred_locales": p.get("preferred_locales") or [],
        "shipping": p.get("shipping") or None,
        "tax_exempt": p.get("tax_exempt") or "none",
        "test_clock": clock_id,
    }
    ctx.store.insert(customer)
    ctx.emit("customer.created", customer)
    pm_id = p.get("payment_method")
    if pm_id:
        from .payments import attach_payment_method

        attach_payment_method(ctx, pm_id, customer, "payment_method")
    settings = p.get("invoice_settings") or {}
    if settings.get("default_payment_method"):
        _set_default_pm(ctx, customer, settings["default_payment_method"])
    return customer


def _set_default_pm(ctx: Ctx, customer: dict[str, Any], pm_id: str | None) -> None:
    if pm_id:
        pm = ctx.store.require("payment_method", pm_id, "invoice_settings[default_payment_method]")
        if pm.get("customer") != customer["id"]:
            raise StripeError(
                400,
                f"No such PaymentMethod: '{pm_id}'; It's possible this "
                "PaymentMethod exists on one of your connected accounts, "
                "in which case you should retry this request on that "
                "account.",
                code="resource_missing",
                param="invoice_settings[default_payment_method]",
            )
    customer["invoice_settings"]["default_payment_method"] = pm_id


@route("POST", "/v1/customers")
def create_customer(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(params, {**CUSTOMER_FIELDS, "test_clock": Str()})
    return ctx.render(new_customer(ctx, p))


@route("GET", "/v1/customers/search")
def search_customers(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(params, {"query": Str(required=True), "limit": Int(min=1, max=100), "page": Str()})
    clauses = _parse_query(p["query"])
    found = [c for c in ctx.store.all("customer") if all(_clause_ok(c, cl) for cl in clauses)]
    limit = p.get("limit") or 10
    return {
        "object": "search_result",
        "data": [ctx.render(c) for c in found[:limit]],
        "has_more": len(found) > limit,
        "next_page": None,
        "url": "/v1/customers/search",
    }


_CLAUSE_RE = re.compile(r"""^\s*(metadata\[['"]([^'"]+)['"]\]|\w+)\s*([:~])\s*['"](.*)['"]\s*$""")


def _parse_query(query: str) -> list[tuple[str, str, str]]:
    clauses = []
    for part in re.split(r"\s+AND\s+", query.strip()):
        m = _CLAUSE_RE.match(part)
        if not m:
            raise StripeError(400, f"Invalid search query: {query}", param="query")
        field = f"metadata.{m.group(2)}" if m.group(2) else m.group(1)
        clauses.append((field, m.group(3), m.group(4)))
    return clauses


def _clause_ok(customer: dict[str, Any], clause: tuple[str, str, str]) -> bool:
    field, op, value = clause
    if field.startswith("metadata."):
        actual = customer["metadata"].get(field.split(".", 1)[1])
    else:
        actual = customer.get(field)
    if actual is None:
        return False
    if op == "~":
        return value.lower() in str(actual).lower()
    return str(actual).lower() == value.lower() if field == "email" else str(actual) == value


@route("GET", "/v1/customers/<customer_id>")
def retrieve_customer(ctx: Ctx, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
    validate(params, {})
    customer = ctx.store.get("customer", customer_id)
    if customer is None:
        ctx.store.require("customer", customer_id)
    assert customer is not None
    return ctx.render(customer)


@route("POST", "/v1/customers/<customer_id>")
def update_customer(ctx: Ctx, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
    customer = ctx.store.require("customer", customer_id)
    p = validate(params, {**CUSTOMER_FIELDS, "default_source": Str()})
    before = ctx.render(customer)
    for key, value in p.items():
        if key == "metadata":
            customer["metadata"] = apply_metadata(customer["metadata"], value)
        elif key == "address":
            customer["address"] = _address(value)
        elif key == "invoice_settings":
            if "default_payment_method" in value:
                _set_default_pm(ctx, customer, value["default_payment_method"])
            if "footer" in value:
                customer["invoice_settings"]["footer"] = value["footer"]
        elif key == "payment_method":
            from .payments import attach_payment_method

            attach_payment_method(ctx, value, customer, "payment_method")
        elif key == "preferred_locales":
            customer[key] = value or []
        elif key in (
            "email",
            "name",
            "description",
            "phone",
            "shipping",
            "balance",
            "invoice_prefix",
            "next_invoice_sequence",
        ):
            customer[key] = value
        elif key == "tax_exempt":
            customer[key] = value or "none"
    ctx.emit_updated("customer.updated", customer, before)
    return ctx.render(customer)


@route("DELETE", "/v1/customers/<customer_id>")
def delete_customer(ctx: Ctx, params: dict[str, Any], customer_id: str) -> dict[str, Any]:
    validate(params, {})
    customer = ctx.store.require("customer", customer_id)
    from ..billing import cancel_now

    for sub in ctx.store.all("subscription"):
        if sub["customer"] == customer_id and sub["status"] not in (
            "canceled",
            "incomplete_expired",
        ):
            cancel_now(ctx, ctx.store.touch(sub), reason="cancellation_requested")
    ctx.emit("customer.deleted", customer)
    customer["_deleted"] = True
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
