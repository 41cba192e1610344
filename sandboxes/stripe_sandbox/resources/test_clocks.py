"""Test clocks: create, retrieve, list, advance, delete."""

from __future__ import annotations

from typing import Any

from .. import billing
from ..billing import clocks
from ..context import Ctx
from ..errors import StripeError
from ..params import Int, Str, validate
from ..routes import route
from .common import list_response

KIND = clocks.KIND


@route("POST", "/v1/test_helpers/test_clocks")
def create_clock(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(params, {"frozen_time": Int(required=True, min=0), "name": Str(max_length=300)})
    clock = clocks.new_clock(ctx, p["frozen_time"], p.get("name"))
    return ctx.render(clock)


@route("GET", "/v1/test_helpers/test_clocks/<clock_id>")
def retrieve_clock(ctx: Ctx, params: dict[str, Any], clock_id: str) -> dict[str, Any]:
    validate(params, {})
    return ctx.render(ctx.store.require(KIND, clock_id))


@route("GET", "/v1/test_helpers/test_clocks")
def list_clocks(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return list_response(ctx, KIND, params, {}, "/v1/test_helpers/test_clocks")


@route("POST", "/v1/test_helpers/test_clocks/<clock_id>/advance")
def advance_clock(ctx: Ctx, params: dict[str, Any], clock_id: str) -> dict[str, Any]:
    clock = ctx.store.require(KIND, clock_id)
    p = validate(params, {"frozen_time": Int(required=True, min=0)})
    if p["frozen_time"] < clock["frozen_time"]:
        raise StripeError(
            400,
            "The test clock cannot be advanced to a time before its current frozen_time.",
            param="frozen_time",
        )
    billing.advance_clock(ctx, clock, p["frozen_time"])
    return ctx.render(clock)


@route("DELETE", "/v1/test_helpers/test_clocks/<clock_id>")
def delete_clock(ctx: Ctx, params: dict[str, Any], clock_id: str) -> dict[str, Any]:
    validate(params, {})
    clocks.delete_clock(ctx, ctx.store.require(KIND, clock_id))
    return {"id": clock_id, "object": KIND, "deleted": True}
