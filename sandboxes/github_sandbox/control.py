"""The /_sandbox control endpoints (loopback callers only): test users, OAuth apps, the
request log, faults and reset. Tests and bin/dev-stack use them; an app never does."""

from __future__ import annotations

import json
from typing import Any, Protocol

from werkzeug.wrappers import Request, Response

from .store import OAuthApp, Store


class Controlled(Protocol):
    store: Store
    faults: dict[str, Any]

    @property
    def requests(self) -> list[dict[str, Any]]: ...

    def reset(self) -> None: ...


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, indent=2), status=status, content_type="application/json")


def _body(request: Request) -> dict[str, Any]:
    data = request.get_json(silent=True) if request.is_json else dict(request.form.items())
    return data if isinstance(data, dict) else {}


def _user_json(user: Any) -> dict[str, Any]:
    return {
        "id": user.id,
        "login": user.login,
        "name": user.name,
        "email": user.primary_email,
        "publicEmail": user.public_email,
    }


def handle_control(sandbox: Controlled, request: Request) -> Response:
    path, method, store = request.path.rstrip("/"), request.method, sandbox.store
    body = _body(request)
    try:
        if path == "/_sandbox/users" and method == "GET":
            with store.lock:
                return _json({"data": [_user_json(u) for u in store.users.values()]})
        if path == "/_sandbox/users" and method == "POST":
            user = store.add_user(
                str(body.get("login", "")),
                user_id=int(body["id"]) if body.get("id") is not None else None,
                name=body.get("name"),
                email=body.get("email"),
                public_email=bool(body.get("publicEmail")),
            )
            return _json(_user_json(user), 201)
        if path.startswith("/_sandbox/users/") and path.endswith("/rename") and method == "POST":
            user_id = int(path.split("/")[3])
            return _json(_user_json(store.rename_user(user_id, str(body.get("login", "")))))
        if path.startswith("/_sandbox/users/") and path.endswith("/email") and method == "POST":
            user_id = int(path.split("/")[3])
            return _json(_user_json(store.change_email(user_id, str(body.get("email", "")))))
        if path == "/_sandbox/apps" and method == "POST":
            app = OAuthApp(
                str(body["client_id"]), str(body["client_secret"]), str(body["callback_url"])
            )
            with store.lock:
                store.apps[app.client_id] = app
            return _json({"client_id": app.client_id, "callback_url": app.callback_url}, 201)
        if path == "/_sandbox/faults" and method == "POST":
            sandbox.faults.update(
                {k: body[k] for k in ("api_status", "token_status", "delay") if k in body}
            )
            return _json(sandbox.faults)
        if path == "/_sandbox/requests" and method == "GET":
            return _json({"data": sandbox.requests})
        if path == "/_sandbox/reset" and method == "POST":
            sandbox.reset()
            return _json({"reset": True})
    except (KeyError, ValueError, TypeError) as exc:
        return _json({"error": str(exc)}, 400)
    return _json({"error": f"no control endpoint {method} {path}"}, 404)
