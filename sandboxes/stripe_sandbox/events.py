"""Event objects: building, ``previous_attributes`` diffs, endpoint matching."""

from __future__ import annotations

import fnmatch
from typing import Any

from .ids import new_id
from .store import Store
from .version import API_VERSION


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Old values of the attributes that changed (nested dicts diffed recursively)."""
    out: dict[str, Any] = {}
    for key in list(old.keys()) + [k for k in new if k not in old]:
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if (
            isinstance(before, dict)
            and isinstance(after, dict)
            and before.get("object") != "list"
            and "id" not in before
        ):
            out[key] = diff(before, after)
        else:
            out[key] = before
    return out


def endpoint_matches(endpoint: dict[str, Any], event_type: str) -> bool:
    if endpoint.get("status") != "enabled":
        return False
    return any(
        pattern == "*" or fnmatch.fnmatchcase(event_type, pattern)
        for pattern in endpoint.get("enabled_events", [])
    )


def build_event(
    store: Store,
    request: dict[str, str | None],
    event_type: str,
    obj: dict[str, Any],
    previous_attributes: dict[str, Any] | None,
    created: int,
) -> dict[str, Any]:
    """Store the event of ``obj``; ``request`` is ``{"id", "idempotency_key"}`` of its cause."""
    endpoints = [e for e in store.all("webhook_endpoint") if endpoint_matches(e, event_type)]
    data: dict[str, Any] = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    event = {
        "id": new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": len(endpoints),
        "request": dict(request),
        "type": event_type,
    }
    store.insert(event)
    return event


def type_matches(event_type: str, pattern: str) -> bool:
    """``type`` filter of events.list: exact, or with ``*`` wildcards."""
    return fnmatch.fnmatchcase(event_type, pattern)
