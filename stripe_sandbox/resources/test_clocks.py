"""Test clocks: create, retrieve, list, advance, delete."""

from __future__ import annotations

from typing import Any

from .. import billing
from ..context import Ctx
from ..ids import new_id
from ..routes import route
from ..timeutil import wall_now
from ..wire import Int, Str, StripeError, validate
from .common import list_response

KIND = "test_helpers.test_clock"


@route("POST", "/v1/test_helpers/test_clocks")
def create_clock(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(params, {"frozen_time": Int(required=True, min=0), "name": Str(max_length=300)})
    now = wall_now()
    clock = {
        "id": new_id("clock"),
        "object": KIND,
        "created": now,
        "deletes_after": now + 30 * billing.DAY,
        "frozen_time": p["frozen_time"],
        "livemode": False,
        "name": p.get("name"),
        "status": "ready",
        "status_details": {},
    }
    ctx.store.insert(clock)
    ctx.emit("test_helpers.test_clock.created", clock)
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
    clock = ctx.store.require(KIND, clock_id)
    for kind in ("customer", "subscription", "invoice"):
        for obj in ctx.store.all(kind):
            if obj.get("test_clock") == clock_id:
                ctx.store.touch(obj)["_deleted"] = True
    ctx.emit("test_helpers.test_clock.deleted", clock)
    ctx.store.remove(KIND, clock_id)
    return {"id": clock_id, "object": KIND, "deleted": True}
