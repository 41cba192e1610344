"""The /_sandbox control endpoints (no auth): request log, reset, config, deliveries, flush."""

from __future__ import annotations

import copy
import json
from typing import Any

from werkzeug.wrappers import Request, Response

from .errors import StripeError
from .host import Host
from .ids import new_id


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, indent=2), status=status, content_type="application/json")


def _body(request: Request) -> dict[str, Any]:
    if request.is_json:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}
    return {k: v for k, v in request.form.items()}


def handle_control(sb: Host, request: Request) -> Response:
    path = request.path.rstrip("/")
    method = request.method.upper()
    if path == "/_sandbox/requests":
        if method == "GET":
            return _json({"object": "list", "data": sb.requests})
        if method == "DELETE":
            sb.clear_requests()
            return _json({"cleared": True})
    elif path == "/_sandbox/reset" and method == "POST":
        sb.reset()
        return _json({"reset": True})
    elif path == "/_sandbox/config":
        if method == "POST":
            try:
                sb.configure(**_body(request))
            except (TypeError, ValueError) as exc:
                return _json({"error": {"type": "invalid_request_error", "message": str(exc)}}, 400)
        if method in ("GET", "POST"):
            return _json(sb.config.as_dict())
    elif path == "/_sandbox/clone" and method == "POST":
        body = _body(request)
        try:
            ids = clone_subscription(sb, str(body["subscription"]), int(body["count"]))
        except StripeError as exc:
            return _json(exc.body(), exc.status)
        except (KeyError, TypeError, ValueError):
            message = "clone needs a JSON body {'subscription': 'sub_...', 'count': n}."
            return _json({"error": {"type": "invalid_request_error", "message": message}}, 400)
        return _json({"object": "list", "data": ids})
    elif path == "/_sandbox/deliveries" and method == "GET":
        return _json({"object": "list", "data": sb.deliveries})
    elif path == "/_sandbox/flush" and method == "POST":
        try:
            timeout = float(_body(request).get("timeout", 10.0))
        except (TypeError, ValueError):
            timeout = 10.0
        return _json({"idle": sb.wait_for_webhooks(timeout)})
    return _json(
        {
            "error": {
                "type": "invalid_request_error",
                "message": f"Unknown sandbox control URL ({method}: {path}).",
            }
        },
        404,
    )


def clone_subscription(sb: Host, sub_id: str, count: int) -> list[str]:
    """Bulk seed (for benchmarks): `count` copies of a subscription, each with its own copy of
    the customer and items, `metadata.userId` suffixed `-1`, `-2`, ... No events are emitted."""
    if not 1 <= count <= 100_000:
        raise ValueError("count must be between 1 and 100000")
    store = sb.store
    with store.lock:
        sub = store.require("subscription", sub_id)
        customer = store.require("customer", sub["customer"])
        items = [store.require("subscription_item", i) for i in sub["_item_ids"]]
        ids = []
        for n in range(1, count + 1):
            cus = copy.deepcopy(customer)
            cus["id"] = new_id("cus")
            clone = copy.deepcopy(sub)
            clone.update(id=new_id("sub"), customer=cus["id"], _item_ids=[])
            for obj in (cus, clone):
                if (obj.get("metadata") or {}).get("userId"):
                    obj["metadata"]["userId"] += f"-{n}"
            for item in items:
                copied = copy.deepcopy(item)
                copied.update(id=new_id("si"), subscription=clone["id"])
                clone["_item_ids"].append(store.insert(copied)["id"])
            store.insert(cus)
            store.insert(clone)
            ids.append(clone["id"])
        return ids
