"""The demo billing page: development and testing only (never registered in production).

`/demo` is a static page plus a script (no inline script, so a strict CSP works) that drives
the real API the way the front end does: pick a dev user, see tier, status and usage, spend a
generation, read the pricing table from /api/plans, upgrade through Checkout, come back to a
success page that waits for the webhook, open the billing portal. In development the default
success/cancel/return URLs point here (app/billing/redirects.py).

`POST /demo/token` mints a short-lived HS256 token for a dev user, the same as
`flask auth token`; it exists only where this blueprint is registered.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Flask, Response, current_app, send_from_directory
from pydantic import Field

from app.api.parsing import parse_body
from app.api.schemas import Body
from app.auth import issue_dev_token
from app.billing.errors import NotFound

DEMO_ENVIRONMENTS = ("development", "testing")
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
PAGES = ("", "/success", "/cancel", "/account")

bp = Blueprint("demo", __name__, url_prefix="/demo", static_folder="static")


class DevTokenRequest(Body):
    userId: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.@-]+$")
    email: str | None = Field(default=None, max_length=255)


def demo_enabled(config: Any) -> bool:
    return config.get("APP_ENV") in DEMO_ENVIRONMENTS


def register_demo(app: Flask) -> None:
    if demo_enabled(app.config):
        app.register_blueprint(bp)


def _page() -> Response:
    response = send_from_directory(STATIC, "index.html", max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response


for _path in PAGES:
    bp.add_url_rule(_path, f"page{_path.replace('/', '_')}", _page, methods=["GET"])


@bp.post("/token")
def dev_token() -> dict[str, Any]:
    if not current_app.config.get("AUTH_JWT_SECRET"):
        raise NotFound("Dev tokens need AUTH_JWT_SECRET (tokens come from your IdP).")
    body = parse_body(DevTokenRequest)
    email = body.email or f"{body.userId}@example.com"
    token = issue_dev_token(current_app.config, body.userId, email=email, ttl_seconds=8 * 3600)
    return {"token": token, "userId": body.userId, "email": email}
