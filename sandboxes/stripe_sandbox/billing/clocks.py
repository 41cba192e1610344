"""Test clocks: creating one, and deleting one with everything on it."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..ids import new_id
from ..timeutil import wall_now
from .constants import DAY

KIND = "test_helpers.test_clock"


def new_clock(ctx: Ctx, frozen_time: int, name: str | None) -> dict[str, Any]:
    now = wall_now()
    clock = {
        "id": new_id("clock"),
        "object": KIND,
        "created": now,
        "deletes_after": now + 30 * DAY,
        "frozen_time": frozen_time,
        "livemode": False,
        "name": name,
        "status": "ready",
        "status_details": {},
    }
    ctx.store.insert(clock)
    ctx.emit("test_helpers.test_clock.created", clock)
    return clock


def delete_clock(ctx: Ctx, clock: dict[str, Any]) -> None:
    """Delete the clock and the customers, subscriptions and invoices on it."""
    for kind in ("customer", "subscription", "invoice"):
        for obj in ctx.store.all(kind):
            if obj.get("test_clock") == clock["id"]:
                ctx.store.touch(obj)["_deleted"] = True
    ctx.emit("test_helpers.test_clock.deleted", clock)
    ctx.store.remove(KIND, clock["id"])
