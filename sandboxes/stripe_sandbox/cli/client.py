"""A small client for a running sandbox's API (standard library only): form-encoded
parameters with nested brackets, Basic auth with a test key, Stripe's error messages."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_API_BASE = "http://127.0.0.1:12111"  # the embedded sandbox of `make run`
DEFAULT_KEY = "sk_test_stripe_sandbox_cli"
TIMEOUT = 30.0

# no proxies from the environment: the sandbox is local
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ApiError(Exception):
    """An error answer: ``status`` and Stripe's ``{"error": {...}}``."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message") or f"HTTP {status}")
        self.status = status
        self.error = error


def running_sandbox_info() -> dict[str, Any]:
    """What a development server wrote about the sandbox it embeds (``SANDBOX_INFO_FILE``,
    default ``instance/stripe-sandbox.json`` under the current directory), if anything."""
    path = os.environ.get("SANDBOX_INFO_FILE") or os.path.join("instance", "stripe-sandbox.json")
    try:
        with open(path) as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def default_api_base() -> str:
    """``STRIPE_API_BASE``, else the running dev server's sandbox, else ``:12111``."""
    info_base = running_sandbox_info().get("STRIPE_API_BASE")
    return os.environ.get("STRIPE_API_BASE") or str(info_base or DEFAULT_API_BASE)


def default_key() -> str:
    key = os.environ.get("STRIPE_SECRET_KEY", "")
    return key if key.startswith(("sk_test_", "rk_test_")) else DEFAULT_KEY


def encode(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``{"a": {"b": [1]}}`` -> ``[("a[b][0]", "1")]``, as Stripe's libraries encode."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            pairs += encode(value, name)
        elif isinstance(value, list):
            pairs += encode({str(i): v for i, v in enumerate(value)}, name)
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif value is not None:
            pairs.append((name, str(value)))
    return pairs


class Client:
    def __init__(self, api_base: str, key: str) -> None:
        self.api_base = api_base.rstrip("/")
        self.auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()

    def request(
        self, method: str, path: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call ``/v1/...`` (or a hosted page/control URL) and return the JSON answer."""
        body = urllib.parse.urlencode(encode(params or {}))
        url = path if path.startswith("http") else f"{self.api_base}{path}"
        data = None
        if method == "GET" and body:
            url = f"{url}?{body}"
        elif method != "GET":
            data = body.encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", self.auth)
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        return self._send(request)

    def form(self, url: str, fields: dict[str, str]) -> int:
        """Submit a hosted page's form as a browser would; returns the HTTP status."""
        data = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(url, data=data, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
        try:
            with opener.open(request, timeout=TIMEOUT) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    @staticmethod
    def _send(request: urllib.request.Request) -> dict[str, Any]:
        try:
            with _OPENER.open(request, timeout=TIMEOUT) as response:
                return dict(json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read()).get("error") or {}
            except ValueError:
                error = {}
            raise ApiError(exc.code, error) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
