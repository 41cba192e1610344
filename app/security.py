"""HTTP guards around every request: body size caps, hostile path ids, client IPs behind
proxies, and the security headers on every response."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from app.errors import ApiError, error_response
from app.safe_text import has_unsafe_chars

WEBHOOK_ENDPOINT = "webhooks.stripe_webhook"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-site",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}
# The pages the app serves itself: the docs (Swagger UI's files served locally) and, outside
# production, the demo page. Scripts, styles and API calls from our own origin only.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_PREFIXES = ("/api/docs", "/demo")
# Public, identical for everyone: may be cached briefly. Everything else is no-store.
CACHEABLE_PATHS = ("/api/openapi.json", "/api/docs")


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


def trusted_proxies(app: Flask) -> int:
    return int(app.config.get("TRUSTED_PROXY_COUNT") or 0)


def behind_proxies(wsgi_app: Any, proxies: int) -> ProxyFix:
    """`wsgi_app` seeing the client's address and scheme as our `proxies` saw them: only the
    last `proxies` hops of X-Forwarded-For are ours; the rest is client-written."""
    return ProxyFix(wsgi_app, x_for=proxies, x_proto=proxies, x_host=0, x_port=0, x_prefix=0)


def install(app: Flask) -> None:
    proxies = trusted_proxies(app)
    if proxies > 0:
        app.wsgi_app = behind_proxies(app.wsgi_app, proxies)  # type: ignore[method-assign]
    app.before_request(_guard_request)
    app.after_request(secure_response)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(error: RequestEntityTooLarge) -> tuple[Response, int]:
        return error_response(_too_large_error())


def _too_large_error() -> PayloadTooLarge:
    return PayloadTooLarge("The request body is too large.")


def _guard_request() -> None:
    if request.endpoint == WEBHOOK_ENDPOINT:
        cap = int(current_app.config["WEBHOOK_MAX_BYTES"])
        # Decided on the header, before a byte of the body is read; a chunked body without
        # Content-Length is cut at the same cap while it is read.
        request.max_content_length = cap
    else:
        cap = int(current_app.config["MAX_CONTENT_LENGTH"])
    if request.content_length is not None and request.content_length > cap:
        raise _too_large_error()
    for value in (request.view_args or {}).values():
        if isinstance(value, str) and has_unsafe_chars(value):
            raise ApiError(
                "The URL contains control characters or invalid unicode.", code="invalid_path"
            )


def secure_response(response: Response) -> Response:
    headers = response.headers
    # One pass over the headers a view set (every request pays for this hook); the usual
    # reply set none of ours, and gets them all in one call.
    present = {name.lower() for name, _value in headers}
    if present.isdisjoint(_HEADER_KEYS):
        headers.extend(_HEADER_PAIRS)
    else:
        headers.extend([(name, value) for key, name, value in _HEADERS if key not in present])
    path = request.path
    if path.startswith(PAGE_PREFIXES):
        headers["Content-Security-Policy"] = PAGE_CSP
    if "cache-control" in present:
        cache = headers.get("Cache-Control")
    else:
        cache = "public, max-age=300" if path in CACHEABLE_PATHS else "no-store"
        headers.add("Cache-Control", cache)
    if cache == "no-store":
        headers["Pragma"] = "no-cache"
    return response


_HEADERS = tuple((name.lower(), name, value) for name, value in SECURITY_HEADERS.items())
_HEADER_KEYS = frozenset(key for key, _name, _value in _HEADERS)
_HEADER_PAIRS = [(name, value) for _key, name, value in _HEADERS]
