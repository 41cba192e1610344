"""Webhook endpoints (the ``secret`` is only returned on create)."""

from __future__ import annotations

import re
from typing import Any

from ..context import Ctx
from ..errors import StripeError
from ..ids import new_id
from ..params import AnyVal, Arr, Bool, Meta, Str, apply_metadata, validate
from ..routes import route
from ..timeutil import wall_now
from .common import list_response, retrieve_stored

_EVENT_RE = re.compile(r"^(\*|[a-z0-9_]+(\.[a-z0-9_*]+)+)$")


def _check_url(url: str) -> str:
    if not re.match(r"^https?://[^\s/]+", url):
        raise StripeError(
            400,
            f"Invalid URL: {url}. URLs must begin with http:// or https://",
            code="url_invalid",
            param="url",
        )
    return url


def _check_events(events: list[str]) -> list[str]:
    if not events:
        raise StripeError(
            400,
            "Missing required param: enabled_events.",
            code="parameter_missing",
            param="enabled_events",
        )
    for i, ev in enumerate(events):
        if not isinstance(ev, str) or not _EVENT_RE.match(ev):
            raise StripeError(
                400,
                f"Invalid enabled_events[{i}]: must be `*` or an event type "
                "such as `customer.subscription.updated`",
                code="parameter_invalid_enum",
                param=f"enabled_events[{i}]",
            )
    return events


@route("POST", "/v1/webhook_endpoints")
def create_endpoint(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            "url": Str(required=True),
            "enabled_events": Arr(Str(), required=True, max_items=300),
            "description": Str(unsettable=True),
            "metadata": Meta(),
            "api_version": Str(),
            "connect": Bool(),
        },
    )
    secret = new_id("whsec")
    endpoint = {
        "id": new_id("we"),
        "object": "webhook_endpoint",
        "api_version": p.get("api_version"),
        "application": None,
        "created": wall_now(),
        "description": p.get("description"),
        "enabled_events": _check_events(p["enabled_events"]),
        "livemode": False,
        "metadata": apply_metadata({}, p.get("metadata")),
        "status": "enabled",
        "url": _check_url(p["url"]),
        "_secret": secret,
    }
    ctx.store.insert(endpoint)
    return {**ctx.render(endpoint), "secret": secret}


route("GET", "/v1/webhook_endpoints/<endpoint_id>")(retrieve_stored("webhook_endpoint"))


@route("POST", "/v1/webhook_endpoints/<endpoint_id>")
def update_endpoint(ctx: Ctx, params: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
    endpoint = ctx.store.require("webhook_endpoint", endpoint_id)
    p = validate(
        params,
        {
            "url": Str(),
            "enabled_events": Arr(Str(), max_items=300),
            "description": Str(unsettable=True),
            "metadata": Meta(),
            "disabled": Bool(),
            "api_version": AnyVal(),
        },
    )
    if "url" in p:
        endpoint["url"] = _check_url(p["url"])
    if "enabled_events" in p:
        endpoint["enabled_events"] = _check_events(p["enabled_events"])
    if "description" in p:
        endpoint["description"] = p["description"]
    if "metadata" in p:
        endpoint["metadata"] = apply_metadata(endpoint["metadata"], p["metadata"])
    if p.get("disabled") is not None:
        endpoint["status"] = "disabled" if p["disabled"] else "enabled"
    return ctx.render(endpoint)


@route("GET", "/v1/webhook_endpoints")
def list_endpoints(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return list_response(ctx, "webhook_endpoint", params, {}, "/v1/webhook_endpoints")


@route("DELETE", "/v1/webhook_endpoints/<endpoint_id>")
def delete_endpoint(ctx: Ctx, params: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
    validate(params, {})
    ctx.store.require("webhook_endpoint", endpoint_id)
    ctx.store.remove("webhook_endpoint", endpoint_id)
    return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}
