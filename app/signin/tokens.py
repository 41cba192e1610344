"""The API's own access tokens: short-lived HS256 JWTs signed with AUTH_SESSION_SECRET.

They are told apart from the tokens of the other modes (AUTH_JWT_SECRET, a JWKS) by their key
id, and checked against their own secret, issuer and audience only: a token signed with any
other key, or claiming another issuer, is refused whatever its `kid` says."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

SESSION_KEY_ID = "billing-session-v1"
SESSION_ISSUER = "billing-api/session"
SESSION_AUDIENCE = "billing-api"


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at: int  # seconds since the epoch
    lifetime: int  # seconds


def mint_access_token(
    config: Mapping[str, Any],
    *,
    user_id: str,
    session_id: str,
    email: str | None,
    name: str | None,
) -> AccessToken:
    lifetime = int(config["AUTH_ACCESS_TOKEN_SECONDS"])
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "iss": SESSION_ISSUER,
        "aud": SESSION_AUDIENCE,
        "iat": now,
        "exp": now + lifetime,
        "sid": session_id,
        # Unique per token: two renewals in one second are still two tokens.
        "jti": secrets.token_urlsafe(12),
    }
    if email:
        claims["email"] = email
    if name:
        claims["name"] = name
    token = jwt.encode(
        claims,
        config["AUTH_SESSION_SECRET"],
        algorithm="HS256",
        headers={"kid": SESSION_KEY_ID},
    )
    return AccessToken(token, now + lifetime, lifetime)


def is_session_token(token: str) -> bool:
    """Only routes the token to this module's check; it proves nothing by itself."""
    try:
        return jwt.get_unverified_header(token).get("kid") == SESSION_KEY_ID
    except jwt.PyJWTError:
        return False


def decode_session_token(token: str, secret: str, *, leeway: int) -> dict[str, Any]:
    """The verified claims; raises PyJWT's errors (no secret configured: no session token
    is valid)."""
    if not secret:
        raise jwt.InvalidTokenError("session tokens are not accepted here")
    return jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        issuer=SESSION_ISSUER,
        audience=SESSION_AUDIENCE,
        leeway=leeway,
        options={"require": ["exp", "iat", "sub", "iss", "aud"]},
    )
