"""The authorization-code flow with state and PKCE (S256), run by the API.

`start_signin` checks where the browser should land (`returnTo`: a front-end origin of
FRONTEND_URL), remembers the attempt (digests of its state and of a browser-binding cookie,
the PKCE verifier, the landing URL) and names GitHub's authorize URL. `finish_signin` takes
the attempt back exactly once, only for the browser that started it, exchanges GitHub's code
with the verifier, reads the user and opens a session. The landing URL never carries a token:
the front end asks POST /auth/refresh for one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import delete

from app import audit
from app.billing.errors import InvalidRequest
from app.billing.redirects import ensure_allowed_url
from app.db import unit_of_work
from app.errors import ApiError
from app.extensions import db
from app.models import SignInAttempt, utcnow
from app.safe_text import has_unsafe_chars
from app.signin.github import GitHubRefused, GitHubUnavailable, authorize_url, sign_in_user
from app.signin.sessions import Renewal, digest, open_session

ATTEMPT_LIFETIME = timedelta(minutes=10)  # as long as GitHub's codes live
MAX_RETURN_TO = 2048
CALLBACK_PATH = "/auth/github/callback"


class InvalidState(ApiError):
    status = 400
    code = "invalid_state"


@dataclass(frozen=True)
class Started:
    authorize_url: str
    browser_key: str  # the binding cookie's value


@dataclass(frozen=True)
class Landing:
    return_to: str
    renewal: Renewal | None
    error: str | None = None  # signin_denied | signin_failed | identity_provider_unavailable

    @property
    def location(self) -> str:
        """Where the browser goes: the landing URL as given, or with `signinError` added."""
        if self.error is None:
            return self.return_to
        parts = urlsplit(self.return_to)
        query = "&".join(filter(None, [parts.query, urlencode({"signinError": self.error})]))
        return urlunsplit(parts._replace(query=query))


def callback_url(config: Mapping[str, Any]) -> str:
    return str(config["PUBLIC_URL"]).rstrip("/") + CALLBACK_PATH


def s256(verifier: str) -> str:
    digest_bytes = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest_bytes).rstrip(b"=").decode("ascii")


def checked_return_to(url: str, config: Mapping[str, Any]) -> str:
    """On an allowed front-end origin (app/billing/redirects.py's rule), and free of what
    browsers and Python's parser read differently (backslashes, whitespace, controls)."""
    if len(url) > MAX_RETURN_TO or has_unsafe_chars(url) or "\\" in url or " " in url:
        raise InvalidRequest(
            "returnTo must be on the application's own site.",
            code="redirect_not_allowed",
            details={"field": "returnTo"},
        )
    return ensure_allowed_url(url, config["FRONTEND_URLS"], field="returnTo")


def start_signin(config: Mapping[str, Any], return_to: str) -> Started:
    landing = checked_return_to(return_to, config)
    state, browser_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)  # 64 characters of [A-Za-z0-9_-] (RFC 7636: 43-128)
    now = utcnow()
    with unit_of_work():
        db.session.execute(
            delete(SignInAttempt).where(SignInAttempt.expires_at < now),
            execution_options={"synchronize_session": False},
        )
        db.session.add(
            SignInAttempt(
                state_hash=digest(state),
                browser_hash=digest(browser_key),
                code_verifier=verifier,
                return_to=landing,
                expires_at=now + ATTEMPT_LIFETIME,
            )
        )
    url = authorize_url(
        config, state=state, challenge=s256(verifier), callback=callback_url(config)
    )
    return Started(url, browser_key)


def finish_signin(
    config: Mapping[str, Any],
    *,
    state: str | None,
    browser_key: str | None,
    code: str | None,
    error: str | None,
) -> Landing:
    attempt = _take_attempt(state)
    if attempt is None or not _same_browser(attempt.browser_hash, browser_key):
        _audit_failure("invalid_state")
        raise InvalidState(
            "This sign-in link is not valid (used already, expired, or started in another "
            "browser). Start again."
        )
    if error or not code:
        reason = "signin_denied" if error == "access_denied" else "signin_failed"
        return _failed(attempt.return_to, reason)
    try:
        profile = sign_in_user(
            config, code=code, verifier=attempt.code_verifier, callback=callback_url(config)
        )
    except GitHubRefused:
        return _failed(attempt.return_to, "signin_failed")
    except GitHubUnavailable:
        return _failed(attempt.return_to, "identity_provider_unavailable")
    return Landing(attempt.return_to, open_session(config, profile))


def _take_attempt(state: str | None) -> Any:
    """The attempt of this state, deleted as it is read: a state works once."""
    if not state:
        return None
    with unit_of_work():
        return db.session.execute(
            delete(SignInAttempt)
            .where(SignInAttempt.state_hash == digest(state), SignInAttempt.expires_at > utcnow())
            .returning(
                SignInAttempt.browser_hash, SignInAttempt.code_verifier, SignInAttempt.return_to
            )
            .execution_options(synchronize_session=False)
        ).first()


def _same_browser(expected_hash: str, browser_key: str | None) -> bool:
    return bool(browser_key) and hmac.compare_digest(expected_hash, digest(browser_key or ""))


def _failed(return_to: str, reason: str) -> Landing:
    _audit_failure(reason)
    return Landing(return_to, None, reason)


def _audit_failure(reason: str) -> None:
    with unit_of_work():
        audit.record("signin.github", reason)
