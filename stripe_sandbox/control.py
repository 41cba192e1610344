"""The /_sandbox control endpoints (no auth): request log, reset, config, deliveries, flush."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response

from .host import Host


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
