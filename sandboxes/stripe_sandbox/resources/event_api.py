"""Events (retrieve, list with type/types/created filters)."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..errors import StripeError
from ..events import type_matches
from ..params import Arr, Bool, Str
from ..routes import route
from .common import list_response, retrieve_stored

route("GET", "/v1/events/<event_id>")(retrieve_stored("event"))


@route("GET", "/v1/events")
def list_events(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("type") and params.get("types"):
        raise StripeError(
            400,
            "You may only specify one of these parameters: type, types.",
            code="parameters_exclusive",
            param="types",
        )

    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        if p.get("type") and not type_matches(o["type"], p["type"]):
            return False
        return not (p.get("types") and o["type"] not in p["types"])

    return list_response(
        ctx,
        "event",
        params,
        {
            "type": Str(),
            "types": Arr(Str(), max_items=20),
            "delivery_success": Bool(),
        },
        "/v1/events",
        keep,
    )
