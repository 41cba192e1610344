"""Who is calling: a bearer JWT verified with PyJWT (HS256 secret, or RS256/ES256 from a JWKS)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import jwt
from flask import current_app, g, request

from app.billing.users import ensure_user
from app.database import commit, retry_on_disconnect
from app.errors import Unauthorized
from app.models import User

F = TypeVar("F", bound=Callable[..., Any])

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]


@dataclass(frozen=True)
class Identity:
    user_id: str
    email: str | None
    name: str | None


# Verified tokens, by token and verification settings: a client sends the same token for many
# requests, and verifying its signature (RS256 above all) dominates a read's CPU. An entry is
# used only while the token's `exp` (plus leeway) has not passed, so caching never extends a
# token's life; a token that fails verification is never cached.
VERIFIED_CACHE_SIZE = 4096


def verify_token(token: str, config: Mapping[str, Any]) -> Identity:
    settings = (
        config.get("AUTH_JWKS_URL") or "",
        config.get("AUTH_JWT_SECRET") or "",
        config.get("AUTH_ISSUER") or "",
        config.get("AUTH_AUDIENCE") or "",
        int(config.get("AUTH_LEEWAY_SECONDS", 30)),
    )
    identity, expires = _verified(token, settings)
    if time.time() > expires + settings[4]:
        _verified.cache_clear() if _verified.cache_info().currsize > VERIFIED_CACHE_SIZE else None
        raise Unauthorized("Your session has expired. Sign in again.", code="token_expired")
    return identity


@functools.lru_cache(maxsize=VERIFIED_CACHE_SIZE)
def _verified(token: str, settings: tuple[str, str, str, str, int]) -> tuple[Identity, float]:
    jwks_url, secret, issuer, audience, leeway = settings
    config = {
        "AUTH_JWKS_URL": jwks_url,
        "AUTH_JWT_SECRET": secret,
        "AUTH_ISSUER": issuer,
        "AUTH_AUDIENCE": audience,
        "AUTH_LEEWAY_SECONDS": leeway,
    }
    return _verify_signature(token, config)


def _verify_signature(token: str, config: Mapping[str, Any]) -> tuple[Identity, float]:
    options: dict[str, Any] = {"require": ["exp", "sub"]}
    kwargs: dict[str, Any] = {"leeway": config.get("AUTH_LEEWAY_SECONDS", 30)}
    if config.get("AUTH_AUDIENCE"):
        kwargs["audience"] = config["AUTH_AUDIENCE"]
    else:
        options["verify_aud"] = False
    if config.get("AUTH_ISSUER"):
        kwargs["issuer"] = config["AUTH_ISSUER"]
    try:
        if config.get("AUTH_JWKS_URL"):
            key: Any = _jwks_client(config["AUTH_JWKS_URL"]).get_signing_key_from_jwt(token).key
            algorithms = ASYMMETRIC_ALGORITHMS
        else:
            key, algorithms = config["AUTH_JWT_SECRET"], ["HS256"]
        claims = jwt.decode(token, key, algorithms=algorithms, options=options, **kwargs)  # type: ignore[arg-type]
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized(
            "Your session has expired. Sign in again.", code="token_expired"
        ) from exc
    except (jwt.PyJWTError, ValueError) as exc:
        raise Unauthorized("Invalid authentication token.", code="invalid_token") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
        raise Unauthorized("Invalid authentication token.", code="invalid_token")
    email = claims.get("email")
    name = claims.get("name")
    identity = Identity(
        user_id=subject,
        email=email if isinstance(email, str) and len(email) <= 255 else None,
        name=name if isinstance(name, str) and len(name) <= 255 else None,
    )
    return identity, float(claims["exp"])


@functools.cache
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300)


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Sign in first: send Authorization: Bearer <token>.", code="missing_token"
        )
    return token.strip()


def login_required(view: F) -> F:
    """Resolve the caller to a user row (created on first sight, committed then) in `g.user`.

    A known user costs one SELECT; the transaction it opens is the view's to use or end."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        identity = verify_token(bearer_token(), current_app.config)
        g.user = retry_on_disconnect(lambda: _resolve(identity))
        return view(*args, **kwargs)

    return cast(F, wrapper)


def _resolve(identity: Identity) -> User:
    user, wrote = ensure_user(
        identity.user_id, email=identity.email, name=identity.name, with_subscriptions=True
    )
    if wrote:
        commit()  # a new user, or a new email, is kept whatever the view does next
    return user


def current_user() -> User:
    return cast(User, g.user)


def issue_dev_token(
    config: Mapping[str, Any], user_id: str, *, email: str | None = None, ttl_seconds: int = 86400
) -> str:
    """An HS256 token for local use (`flask auth token`); needs AUTH_JWT_SECRET."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if email:
        claims["email"] = email
    if config.get("AUTH_ISSUER"):
        claims["iss"] = config["AUTH_ISSUER"]
    if config.get("AUTH_AUDIENCE"):
        claims["aud"] = config["AUTH_AUDIENCE"]
    return jwt.encode(claims, config["AUTH_JWT_SECRET"], algorithm="HS256")
