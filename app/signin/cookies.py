"""The two cookies of the sign-in, and the CSRF checks of the routes the refresh cookie opens.

`billing_refresh` holds the refresh token: httpOnly (no script reads it), scoped to /auth
(never sent to /api), SameSite and Secure from the settings (app/signin/settings.py).
`billing_signin` binds a GitHub sign-in to the browser that started it: httpOnly, scoped to
/auth/github, SameSite=Lax (GitHub's redirect back is a top-level navigation), ten minutes.

A browser attaches cookies to cross-site requests it makes on its own (forms, links), so the
routes that act on the refresh cookie also require an allowed `Origin` and a header a form
can't send (`X-Requested-With`), which a cross-origin script can send only after a CORS
preflight that only FRONTEND_URL's origins pass."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.http import dump_cookie

from app.billing.redirects import origin_of
from app.errors import ApiError
from app.models import utcnow

REFRESH_COOKIE = "billing_refresh"
REFRESH_COOKIE_PATH = "/auth"
BROWSER_COOKIE = "billing_signin"
BROWSER_COOKIE_PATH = "/auth/github"
BROWSER_COOKIE_SECONDS = 600
CSRF_HEADER = "X-Requested-With"


class CsrfRefused(ApiError):
    status = 403
    code = "origin_not_allowed"


def refresh_cookie(config: Mapping[str, Any], token: str, *, ends: datetime) -> str:
    """A Set-Cookie value that lives as long as the session."""
    seconds = max(0, int((ends - utcnow()).total_seconds()))
    return _cookie(config, REFRESH_COOKIE, token, REFRESH_COOKIE_PATH, seconds)


def expired_refresh_cookie(config: Mapping[str, Any]) -> str:
    return _cookie(config, REFRESH_COOKIE, "", REFRESH_COOKIE_PATH, 0)


def browser_cookie(config: Mapping[str, Any], key: str) -> str:
    return _cookie(
        config, BROWSER_COOKIE, key, BROWSER_COOKIE_PATH, BROWSER_COOKIE_SECONDS, samesite="Lax"
    )


def expired_browser_cookie(config: Mapping[str, Any]) -> str:
    return _cookie(config, BROWSER_COOKIE, "", BROWSER_COOKIE_PATH, 0, samesite="Lax")


def _cookie(
    config: Mapping[str, Any],
    name: str,
    value: str,
    path: str,
    max_age: int,
    *,
    samesite: str | None = None,
) -> str:
    chosen = samesite or str(config["AUTH_COOKIE_SAMESITE"])
    return dump_cookie(
        name,
        value,
        max_age=max_age,
        expires=0 if max_age == 0 else None,  # a clear: 1970, as Flask's delete_cookie
        path=path,
        secure=bool(config["AUTH_COOKIE_SECURE"]) or chosen == "None",
        httponly=True,
        samesite=chosen,
    )


def check_cookie_request(headers: Headers, config: Mapping[str, Any]) -> None:
    """Refuse (403) a request to a cookie route that a page of another site could have made."""
    origin = headers.get("Origin", "")
    allowed = {origin_of(url) for url in config["FRONTEND_URLS"]}
    if not origin or origin == "null" or origin_of(origin) not in allowed:
        raise CsrfRefused(
            "This request must come from the application's own site (Origin).",
            code="origin_not_allowed",
        )
    if not headers.get(CSRF_HEADER, "").strip():
        raise CsrfRefused(
            f"Send the {CSRF_HEADER} header with this request (e.g. {CSRF_HEADER}: fetch).",
            code="csrf_header_required",
        )
