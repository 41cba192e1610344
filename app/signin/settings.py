"""Sign in with GitHub: its settings, the values derived from them (the refresh cookie's
SameSite and Secure), and the rules a deployment must meet (docs/frontend.md).

Imported by app/config.py; imports nothing of the app, so the configuration has no cycle."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

# Public on purpose, for development only: production refuses it.
DEV_SESSION_SECRET = "dev-only-session-secret-change-me-0123456789"  # nosec B105
MIN_SESSION_SECRET_BYTES = 32
SAMESITE_VALUES = {"lax": "Lax", "strict": "Strict", "none": "None"}
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

Reader = Callable[[str, Any], Any]


def signin_from_env(whole: Reader) -> dict[str, Any]:
    """The settings as the environment gives them (`whole` reads a number, recording a
    malformed one as a start-up problem)."""
    return {
        # An OAuth app (GitHub > Settings > Developer settings); both or neither.
        "GITHUB_CLIENT_ID": os.environ.get("GITHUB_CLIENT_ID", ""),
        "GITHUB_CLIENT_SECRET": os.environ.get("GITHUB_CLIENT_SECRET", ""),
        # Where the authorize page and token endpoint are, and the REST API (bin/dev-stack
        # and the tests point both at github_sandbox).
        "GITHUB_BASE_URL": os.environ.get("GITHUB_BASE_URL", "https://github.com"),
        "GITHUB_API_URL": os.environ.get("GITHUB_API_URL", "https://api.github.com"),
        "GITHUB_TIMEOUT_SECONDS": whole("GITHUB_TIMEOUT_SECONDS", 5),
        # Signs the API's own access tokens (HS256); not AUTH_JWT_SECRET's value.
        "AUTH_SESSION_SECRET": os.environ.get("AUTH_SESSION_SECRET", ""),
        "AUTH_ACCESS_TOKEN_SECONDS": whole("AUTH_ACCESS_TOKEN_SECONDS", 900),
        # A sign-in lasts this long (the refresh cookie's life; renewing doesn't extend it).
        "AUTH_SESSION_DAYS": whole("AUTH_SESSION_DAYS", 30),
        # A rotated refresh token sent again within this many seconds (two tabs renewing at
        # once) gets an access token but no new cookie; later, its reuse ends the session.
        "AUTH_REFRESH_GRACE_SECONDS": whole("AUTH_REFRESH_GRACE_SECONDS", 10),
        # Lax | Strict | None; empty: derived from PUBLIC_URL and FRONTEND_URL (cookie_policy).
        "AUTH_COOKIE_SAMESITE": os.environ.get("AUTH_COOKIE_SAMESITE", ""),
    }


def github_configured(config: Mapping[str, Any]) -> bool:
    return bool(config.get("GITHUB_CLIENT_ID") and config.get("GITHUB_CLIENT_SECRET"))


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _is_https(url: str) -> bool:
    return urlsplit(url).scheme == "https"


def derived_samesite(public_url: str, frontend_urls: list[str]) -> str:
    """Lax when every front end is served from the API's own host (the demo page, a front end
    behind the same domain); otherwise None, which a cross-site front end (a Spark app on
    *.github.app, the API on Render) needs, and which browsers accept only with Secure, so
    only over https. A plain-http API (development) gets Lax."""
    api_host = _host(public_url)
    if all(_host(url) == api_host for url in frontend_urls) or not _is_https(public_url):
        return "Lax"
    return "None"


def finalize_signin(config: dict[str, Any], *, production: bool) -> list[str]:
    """Fill the derived values (the dev secret outside production, the cookie's SameSite and
    Secure); return what is wrong."""
    problems = signin_problems(config)
    if not config["AUTH_SESSION_SECRET"] and not production:
        config["AUTH_SESSION_SECRET"] = DEV_SESSION_SECRET
    chosen = str(config.get("AUTH_COOKIE_SAMESITE") or "").strip().lower()
    public_url = str(config["PUBLIC_URL"])
    samesite = SAMESITE_VALUES.get(chosen) or derived_samesite(public_url, config["FRONTEND_URLS"])
    config["AUTH_COOKIE_SAMESITE"] = samesite
    config["AUTH_COOKIE_SECURE"] = _is_https(public_url) or samesite == "None"
    return problems


def signin_problems(config: Mapping[str, Any]) -> list[str]:
    """Rules for every environment."""
    problems = []
    if bool(config.get("GITHUB_CLIENT_ID")) != bool(config.get("GITHUB_CLIENT_SECRET")):
        problems.append("GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET must be set together")
    chosen = str(config.get("AUTH_COOKIE_SAMESITE") or "").strip().lower()
    if chosen and chosen not in SAMESITE_VALUES:
        problems.append(
            f"AUTH_COOKIE_SAMESITE must be Lax, Strict or None (or empty), not {chosen!r}"
        )
    if chosen == "none" and not _is_https(str(config.get("PUBLIC_URL") or "")):
        problems.append(
            "AUTH_COOKIE_SAMESITE=None needs an https:// PUBLIC_URL (browsers drop SameSite=None"
            " cookies that are not Secure)"
        )
    longest = int(config.get("AUTH_MAX_TOKEN_LIFETIME_SECONDS") or 86400)
    if not 60 <= int(config.get("AUTH_ACCESS_TOKEN_SECONDS") or 0) <= longest:
        problems.append(
            "AUTH_ACCESS_TOKEN_SECONDS must be between 60 and AUTH_MAX_TOKEN_LIFETIME_SECONDS"
        )
    if not 1 <= int(config.get("AUTH_SESSION_DAYS") or 0) <= 400:
        problems.append("AUTH_SESSION_DAYS must be between 1 and 400")
    return problems


def signin_production_problems(
    config: Mapping[str, Any], known_dev_secrets: frozenset[str]
) -> list[str]:
    """What production needs when GitHub sign-in is on: its own strong secret (checked whenever
    one is set: it verifies the API's tokens), https everywhere a browser or the token exchange
    goes."""
    secret = str(config.get("AUTH_SESSION_SECRET") or "")
    if not github_configured(config) and not secret:
        return []
    problems = []
    if not secret:
        problems.append("AUTH_SESSION_SECRET must be set with GitHub sign-in (32+ random bytes)")
    elif secret in known_dev_secrets or secret == DEV_SESSION_SECRET:
        problems.append("AUTH_SESSION_SECRET is a published development value; generate a new one")
    elif len(secret.encode()) < MIN_SESSION_SECRET_BYTES:
        problems.append(f"AUTH_SESSION_SECRET must be at least {MIN_SESSION_SECRET_BYTES} bytes")
    elif secret == config.get("AUTH_JWT_SECRET"):
        problems.append("AUTH_SESSION_SECRET must differ from AUTH_JWT_SECRET")
    if not github_configured(config):
        return problems
    for name in ("GITHUB_BASE_URL", "GITHUB_API_URL", "PUBLIC_URL"):
        if not _is_https(str(config.get(name) or "")):
            problems.append(f"{name} must be an https:// URL with GitHub sign-in")
    if not all(_is_https(url) for url in config.get("FRONTEND_URLS") or []):
        problems.append("FRONTEND_URL must list https:// origins only with GitHub sign-in")
    return problems
