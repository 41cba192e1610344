"""The REST endpoints an OAuth app reads after sign-in: `GET /user` and `GET /user/emails`,
with GitHub's answers for a missing or bad token and a missing scope."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response

from .store import Store

REST_DOCS = "https://docs.github.com/rest"


def rest_json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body),
        status=status,
        content_type="application/json; charset=utf-8",
        headers={"X-GitHub-Media-Type": "github.v3; format=json"},
    )


def rest_error(message: str, status: int, docs: str = REST_DOCS) -> Response:
    return rest_json({"message": message, "documentation_url": docs, "status": str(status)}, status)


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() in ("bearer", "token") and token.strip() else None


def handle_rest(store: Store, request: Request, base_url: str) -> Response:
    if request.method != "GET" or request.path.rstrip("/") not in ("/user", "/user/emails"):
        return rest_error("Not Found", 404)
    token = _bearer(request)
    if token is None:
        return rest_error(
            "Requires authentication", 401, f"{REST_DOCS}/users/users#get-the-authenticated-user"
        )
    found = store.user_for_token(token)
    if found is None:
        return rest_error("Bad credentials", 401)
    user, issued = found
    if request.path.rstrip("/") == "/user":
        return rest_json(user.profile(base_url))
    if "user:email" not in issued.scope.replace(",", " ").split() and "user" not in issued.scope:
        return rest_error("Not Found", 404, f"{REST_DOCS}/users/emails")
    return rest_json(user.emails())
