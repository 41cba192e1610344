"""Who is calling: a bearer JWT verified with PyJWT (HS256 secret, or RS256/ES256 from a JWKS)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import jwt
from flask import current_app, g, request

from app.billing.accounts.rows import AnyUser
from app.billing.accounts.store import signed_in_account
from app.billing.accounts.users import customer_email_stale, ensure_user
from app.billing.errors import ProviderUnavailable
from app.billing.invoices.service import sync_customer_email
from app.db import outside_transaction, retry_on_disconnect
from app.errors import ApiError, Unauthorized
from app.models import User
from app.ratelimit import count_failed_auth
from app.safe_text import for_log, has_unsafe_chars
from app.signin.tokens import decode_session_token, is_session_token

F = TypeVar("F", bound=Callable[..., Any])

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]

log = logging.getLogger(__name__)


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
        int(config.get("AUTH_MAX_TOKEN_LIFETIME_SECONDS") or 86400),
        config.get("AUTH_SESSION_SECRET") or "",
    )
    identity, expires = _verified(token, settings)
    if time.time() > expires + settings[4]:
        _verified.cache_clear() if _verified.cache_info().currsize > VERIFIED_CACHE_SIZE else None
        raise Unauthorized("Your session has expired. Sign in again.", code="token_expired")
    return identity


@functools.lru_cache(maxsize=VERIFIED_CACHE_SIZE)
def _verified(
    token: str, settings: tuple[str, str, str, str, int, int, str]
) -> tuple[Identity, float]:
    """Only tokens that passed every check (signature, claims, lifetime cap) are cached; the
    lifetime cap is part of the key, so a cached token is never judged by an older setting."""
    jwks_url, secret, issuer, audience, leeway, longest, session_secret = settings
    config = {
        "AUTH_JWKS_URL": jwks_url,
        "AUTH_JWT_SECRET": secret,
        "AUTH_ISSUER": issuer,
        "AUTH_AUDIENCE": audience,
        "AUTH_LEEWAY_SECONDS": leeway,
        "AUTH_MAX_TOKEN_LIFETIME_SECONDS": longest,
        "AUTH_SESSION_SECRET": session_secret,
    }
    return _verify_signature(token, config)


def _decode(token: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The claims of a token of any configured mode: the API's own (GitHub sign-in), the
    identity provider's (JWKS) or a backend's (HS256 with AUTH_JWT_SECRET)."""
    leeway = int(config.get("AUTH_LEEWAY_SECONDS", 30))
    if is_session_token(token):
        return decode_session_token(token, config.get("AUTH_SESSION_SECRET") or "", leeway=leeway)
    options: dict[str, Any] = {"require": ["exp", "sub"]}
    kwargs: dict[str, Any] = {"leeway": leeway}
    if config.get("AUTH_AUDIENCE"):
        kwargs["audience"] = config["AUTH_AUDIENCE"]
    else:
        options["verify_aud"] = False
    if config.get("AUTH_ISSUER"):
        kwargs["issuer"] = config["AUTH_ISSUER"]
    if config.get("AUTH_JWKS_URL"):
        key: Any = _jwks_key(token, config["AUTH_JWKS_URL"])
        algorithms = ASYMMETRIC_ALGORITHMS
    elif config.get("AUTH_JWT_SECRET"):
        key, algorithms = config["AUTH_JWT_SECRET"], ["HS256"]
    else:  # GitHub sign-in only: no other token is valid
        raise jwt.InvalidTokenError("no key for this token")
    return jwt.decode(token, key, algorithms=algorithms, options=options, **kwargs)  # type: ignore[arg-type]


def _verify_signature(token: str, config: Mapping[str, Any]) -> tuple[Identity, float]:
    try:
        claims = _decode(token, config)
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized(
            "Your session has expired. Sign in again.", code="token_expired"
        ) from exc
    except (jwt.PyJWTError, ValueError) as exc:
        raise Unauthorized("Invalid authentication token.", code="invalid_token") from exc
    _check_lifetime(claims, config)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
        raise Unauthorized("Invalid authentication token.", code="invalid_token")
    email = claims.get("email")
    name = claims.get("name")
    for claim in (subject, email, name):
        if isinstance(claim, str) and has_unsafe_chars(claim):
            # Signed, but unusable: these would reach the database and the logs.
            raise ApiError(
                "The token's claims contain control characters or invalid unicode.",
                code="invalid_token_claims",
            )
    identity = Identity(
        user_id=subject,
        email=email if isinstance(email, str) and len(email) <= 255 else None,
        name=name if isinstance(name, str) and len(name) <= 255 else None,
    )
    return identity, float(claims["exp"])


def _check_lifetime(claims: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """`exp` no further than AUTH_MAX_TOKEN_LIFETIME_SECONDS past `iat` (or now, without it):
    a token valid for centuries is a leaked credential forever."""
    longest = int(config.get("AUTH_MAX_TOKEN_LIFETIME_SECONDS") or 86400)
    leeway = int(config.get("AUTH_LEEWAY_SECONDS", 30))
    issued = claims.get("iat")
    start = issued if isinstance(issued, int | float) and not isinstance(issued, bool) else None
    start = time.time() if start is None else start
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or expires - start > longest + leeway:
        raise Unauthorized("Invalid authentication token.", code="invalid_token")


def _jwks_key(token: str, url: str) -> Any:
    """Our identity provider being down is a 503 (try again), not the caller's bad token."""
    try:
        return _jwks_client(url).get_signing_key_from_jwt(token).key
    except jwt.PyJWKClientConnectionError as exc:
        log.error("JWKS unreachable at %s: %s", for_log(url), for_log(exc))
        raise ProviderUnavailable(
            "Sign-in can't be checked right now. Try again shortly.",
            code="identity_provider_unavailable",
        ) from exc


@functools.cache
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)


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
    return _signing_in(view, _resolve)


def login_required_lean(*, writes: bool) -> Callable[[F], F]:
    """`login_required` for the hot requests: a known user whose token matches their row is
    read with one Core statement into a plain, read-only `UserRow` (`current_caller()`); the
    ORM row is loaded only if the view asks for it (`current_user()`). A new user or a changed
    email or name is written as `login_required` does.

    `writes`: the view writes (in the transaction the sign-in read opens); a view that
    usually only reads gets the read outside any transaction (`read_account`)."""

    def resolve(identity: Identity) -> AnyUser:
        account = signed_in_account(
            identity.user_id, email=identity.email, name=identity.name, in_transaction=writes
        )
        return account if account is not None else _resolve(identity)

    return lambda view: _signing_in(view, resolve)


def _signing_in(view: F, resolve: Callable[[Identity], AnyUser]) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        identity = _authenticated()
        g.identity = identity
        g.user = retry_on_disconnect(lambda: resolve(identity))
        return view(*args, **kwargs)

    return cast(F, wrapper)


def _authenticated() -> Identity:
    try:
        return verify_token(bearer_token(), current_app.config)
    except Unauthorized:
        count_failed_auth()
        raise


def _resolve(identity: Identity) -> User:
    user, wrote = ensure_user(
        identity.user_id, email=identity.email, name=identity.name, with_subscriptions=True
    )
    if wrote:
        outside_transaction()  # a new user, or a new email, is kept whatever the view does next
    if customer_email_stale(user):
        sync_customer_email(user)  # Stripe's receipts and invoices go to the new address
    return user


def current_user() -> User:
    """The caller's ORM row (with their subscriptions). Under `login_required_lean` it is
    loaded on first use: ask before the view writes anything, as signing in may commit."""
    user = g.user
    if not isinstance(user, User):
        user = g.user = _resolve(g.identity)
    return user


def current_caller() -> AnyUser:
    """The caller, as a plain row or the ORM row: for reading only."""
    return cast(AnyUser, g.user)


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
