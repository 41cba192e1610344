"""Invoice items: create, retrieve, update, delete, list."""

from __future__ import annotations

from typing import Any

from ..billing import invoices
from ..context import Ctx
from ..errors import bad_state
from ..params import AnyVal, Bool, Int, Meta, Obj, Str, apply_metadata, validate
from ..routes import route
from .common import list_response, retrieve_stored

KIND = "invoiceitem"
IGNORED = {k: AnyVal() for k in ("discounts", "tax_rates", "tax_behavior", "tax_code")}


@route("POST", "/v1/invoiceitems")
def create_invoice_item(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            **IGNORED,
            "customer": Str(required=True),
            "amount": Int(),
            "unit_amount": Int(),
            "unit_amount_decimal": Str(),
            "currency": Str(),
            "price": Str(),
            "pricing": Obj({"price": Str()}),
            "price_data": AnyVal(),
            "quantity": Int(min=1),
            "description": Str(max_length=500),
            "metadata": Meta(),
            "period": Obj({"start": Int(required=True), "end": Int(required=True)}),
            "invoice": Str(),
            "subscription": Str(),
            "discountable": Bool(),
        },
    )
    if (p.get("pricing") or {}).get("price"):
        p["price"] = p["pricing"]["price"]
    return ctx.render(invoices.new_invoice_item(ctx, p))


route("GET", "/v1/invoiceitems/<item_id>")(retrieve_stored(KIND))


@route("POST", "/v1/invoiceitems/<item_id>")
def update_invoice_item(ctx: Ctx, params: dict[str, Any], item_id: str) -> dict[str, Any]:
    item = ctx.store.require(KIND, item_id)
    p = validate(params, {**IGNORED, "description": Str(), "metadata": Meta()})
    if item["invoice"]:
        invoice = ctx.store.require("invoice", item["invoice"])
        if invoice["status"] != "draft":
            raise bad_state("You can only update invoice items on draft invoices.")
    if "description" in p:
        item["description"] = p["description"]
    if "metadata" in p:
        item["metadata"] = apply_metadata(item["metadata"], p["metadata"])
    return ctx.render(item)


@route("DELETE", "/v1/invoiceitems/<item_id>")
def delete_invoice_item(ctx: Ctx, params: dict[str, Any], item_id: str) -> dict[str, Any]:
    validate(params, {})
    invoices.delete_invoice_item(ctx, ctx.store.require(KIND, item_id))
    return {"id": item_id, "object": KIND, "deleted": True}


@route("GET", "/v1/invoiceitems")
def list_invoice_items(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        if p.get("customer") and o["customer"] != p["customer"]:
            return False
        if p.get("invoice") and o["invoice"] != p["invoice"]:
            return False
        return not (p.get("pending") is not None and (o["invoice"] is None) != p["pending"])

    return list_response(
        ctx,
        KIND,
        params,
        {"customer": Str(), "invoice": Str(), "pending": Bool()},
        "/v1/invoiceitems",
        keep,
    )
