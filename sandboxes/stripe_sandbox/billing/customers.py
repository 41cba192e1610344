"""Customers: creation with payment methods, updates, deletion, and search queries."""

from __future__ import annotations

import re
import secrets
from typing import Any

from .. import cards
from ..context import Ctx
from ..errors import StripeError
from ..ids import new_id
from ..params import apply_metadata
from .constants import ENDED
from .lifecycle import cancel_now
from .payment_methods import add_source, attach_payment_method, attached_payment_method


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
        attach_payment_method(ctx, pm_id, customer, "payment_method")
    if p.get("source"):
        add_source(ctx, customer, p["source"])
    settings = p.get("invoice_settings") or {}
    if settings.get("default_payment_method"):
        set_default_payment_method(ctx, customer, settings["default_payment_method"])
    return customer


def set_default_payment_method(ctx: Ctx, customer: dict[str, Any], pm_id: str | None) -> None:
    param = "invoice_settings[default_payment_method]"
    if pm_id and cards.magic_card(pm_id) is not None:
        pm_id = attached_payment_method(ctx, pm_id, customer["id"], param)["id"]
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


_CLAUSE_RE = re.compile(r"""^\s*(metadata\[['"]([^'"]+)['"]\]|\w+)\s*([:~])\s*['"](.*)['"]\s*$""")


def parse_query(query: str) -> list[tuple[str, str, str]]:
    clauses = []
    for part in re.split(r"\s+AND\s+", query.strip()):
        m = _CLAUSE_RE.match(part)
        if not m:
            raise StripeError(400, f"Invalid search query: {query}", param="query")
        field = f"metadata.{m.group(2)}" if m.group(2) else m.group(1)
        clauses.append((field, m.group(3), m.group(4)))
    return clauses


def clause_matches(customer: dict[str, Any], clause: tuple[str, str, str]) -> bool:
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


PLAIN_FIELDS = (
    "email",
    "name",
    "description",
    "phone",
    "shipping",
    "balance",
    "invoice_prefix",
    "next_invoice_sequence",
)


def update_customer(ctx: Ctx, customer: dict[str, Any], p: dict[str, Any]) -> None:
    """Apply cleaned update parameters (``customer.updated`` if anything changed)."""
    before = ctx.render(customer)
    for key, value in p.items():
        if key == "metadata":
            customer["metadata"] = apply_metadata(customer["metadata"], value)
        elif key == "address":
            customer["address"] = _address(value)
        elif key == "invoice_settings":
            _update_invoice_settings(ctx, customer, value)
        elif key == "payment_method":
            attach_payment_method(ctx, value, customer, "payment_method")
        elif key == "source" and value:
            add_source(ctx, customer, value)
        elif key == "preferred_locales":
            customer[key] = value or []
        elif key in PLAIN_FIELDS:
            customer[key] = value
        elif key == "tax_exempt":
            customer[key] = value or "none"
    ctx.emit_updated("customer.updated", customer, before)


def _update_invoice_settings(ctx: Ctx, customer: dict[str, Any], value: dict[str, Any]) -> None:
    if "default_payment_method" in value:
        set_default_payment_method(ctx, customer, value["default_payment_method"])
    if "footer" in value:
        customer["invoice_settings"]["footer"] = value["footer"]


def delete_customer(ctx: Ctx, customer: dict[str, Any]) -> None:
    """Cancel the customer's live subscriptions, then delete it."""
    for sub in ctx.store.all("subscription"):
        if sub["customer"] == customer["id"] and sub["status"] not in ENDED:
            cancel_now(ctx, ctx.store.touch(sub), reason="cancellation_requested")
    ctx.emit("customer.deleted", customer)
    customer["_deleted"] = True


def search_customers(ctx: Ctx, query: str) -> list[dict[str, Any]]:
    clauses = parse_query(query)
    return [c for c in ctx.store.all("customer") if all(clause_matches(c, cl) for cl in clauses)]
