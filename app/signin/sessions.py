"""Sessions after a GitHub sign-in: a family of refresh tokens that renews the short-lived
access token without another GitHub round trip.

Each renewal rotates the refresh token (the old one is marked, a new one issued); presenting a
rotated token again means two parties hold it, so the whole session is revoked, unless it
comes within AUTH_REFRESH_GRACE_SECONDS of its rotation (two tabs renewing at once), which is
answered with an access token but no new refresh token. Tokens are stored as SHA-256 digests
only; a session lasts AUTH_SESSION_DAYS from sign-in, renewals don't extend it."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from app import audit
from app.db import unit_of_work
from app.extensions import db
from app.models import AuthSession, RefreshToken, utcnow
from app.signin.github import GitHubProfile
from app.signin.tokens import AccessToken, mint_access_token

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
# Expired sessions are deleted this long after their end (at the next sign-in).
KEEP_EXPIRED = timedelta(days=1)


class SessionRefused(Exception):
    """The refresh token can't renew anything: `code` says why (the API's error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SessionUser:
    id: str
    login: str | None
    email: str | None
    name: str | None


@dataclass(frozen=True)
class Renewal:
    access: AccessToken
    # The new refresh token for the cookie; None: keep the cookie the browser has.
    refresh_token: str | None
    user: SessionUser
    session_ends: datetime


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; only UTC is ever stored.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def open_session(config: Mapping[str, Any], profile: GitHubProfile) -> Renewal:
    """A new session for who just signed in, with its first refresh token."""
    now = utcnow()
    session = AuthSession(
        id=secrets.token_urlsafe(18),
        user_id=profile.user_id,
        login=profile.login,
        email=profile.email,
        name=profile.name,
        expires_at=now + timedelta(days=int(config["AUTH_SESSION_DAYS"])),
    )
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    with unit_of_work():
        _prune_expired(now)
        db.session.add(session)
        db.session.flush()
        db.session.add(RefreshToken(token_hash=digest(raw), session_id=session.id))
        audit.record("signin.github", "ok", user_id=profile.user_id, detail=f"session {session.id}")
    return _renewal(config, session, raw)


def renew_session(config: Mapping[str, Any], raw: str | None) -> Renewal:
    """A new access token (and refresh token) for the cookie's session; SessionRefused when
    there is none to renew."""
    if not raw:
        raise SessionRefused("missing_refresh_token", "Sign in first: no session cookie was sent.")
    with unit_of_work():
        outcome = _rotate(config, digest(raw), utcnow())
    if isinstance(outcome, SessionRefused):
        raise outcome  # after the commit: a revocation for reuse is kept
    return outcome


def _rotate(config: Mapping[str, Any], token_hash: str, now: datetime) -> Renewal | SessionRefused:
    row = db.session.execute(
        select(RefreshToken, AuthSession)
        .join(AuthSession, RefreshToken.session_id == AuthSession.id)
        .where(RefreshToken.token_hash == token_hash)
    ).first()
    if row is None:
        return SessionRefused("invalid_refresh_token", "This session is not known. Sign in again.")
    token, session = row
    if session.revoked_at is not None:
        return SessionRefused("refresh_token_revoked", "This session has ended. Sign in again.")
    if _aware(session.expires_at) <= now:
        return SessionRefused("refresh_token_expired", "This session has expired. Sign in again.")
    if token.rotated_at is not None:
        grace = timedelta(seconds=int(config["AUTH_REFRESH_GRACE_SECONDS"]))
        if now - _aware(token.rotated_at) <= grace:
            return _renewal(config, session, None)
        return _revoke_for_reuse(session, now)
    claimed = db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == token_hash, RefreshToken.rotated_at.is_(None))
        .values(rotated_at=now)
        .returning(RefreshToken.token_hash)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:  # another request rotated it a moment ago (its grace applies)
        return _renewal(config, session, None)
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    db.session.add(RefreshToken(token_hash=digest(raw), session_id=session.id))
    return _renewal(config, session, raw)


def _revoke_for_reuse(session: AuthSession, now: datetime) -> SessionRefused:
    _revoke(session.id, "reused", now)
    audit.record(
        "signin.token_reused", "revoked", user_id=session.user_id, detail=f"session {session.id}"
    )
    log.warning("a rotated refresh token was used again: session %s revoked", session.id)
    return SessionRefused(
        "refresh_token_reused",
        "This session was ended because an old sign-in token was used again. Sign in again.",
    )


def end_session(raw: str | None) -> bool:
    """Sign-out: revoke the session of this refresh token (current or rotated); True when
    there was one to end."""
    if not raw:
        return False
    with unit_of_work():
        found = db.session.execute(
            select(AuthSession.id, AuthSession.user_id)
            .join(RefreshToken, RefreshToken.session_id == AuthSession.id)
            .where(RefreshToken.token_hash == digest(raw))
        ).first()
        if found is None:
            return False
        if _revoke(found.id, "signed_out", utcnow()):
            audit.record(
                "signin.sign_out", "ok", user_id=found.user_id, detail=f"session {found.id}"
            )
    return True


def end_user_sessions(user_id: str, reason: str = "operator") -> int:
    """Revoke every live session of a user (`flask auth sign-out USER_ID`): their refresh
    cookies stop working at once, their access tokens within AUTH_ACCESS_TOKEN_SECONDS."""
    with unit_of_work():
        ended = db.session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_reason=reason)
            .returning(AuthSession.id)
            .execution_options(synchronize_session=False)
        ).all()
        if ended:
            audit.record(
                "signin.sign_out_everywhere",
                reason,
                user_id=user_id,
                detail=f"{len(ended)} sessions",
            )
    return len(ended)


def _revoke(session_id: str, reason: str, now: datetime) -> bool:
    revoked = db.session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(AuthSession.id)
        .execution_options(synchronize_session=False)
    ).first()
    return revoked is not None


def _prune_expired(now: datetime) -> None:
    quietly = {"synchronize_session": False}
    ended = select(AuthSession.id).where(AuthSession.expires_at < now - KEEP_EXPIRED)
    db.session.execute(
        delete(RefreshToken).where(RefreshToken.session_id.in_(ended)), execution_options=quietly
    )
    db.session.execute(
        delete(AuthSession).where(AuthSession.expires_at < now - KEEP_EXPIRED),
        execution_options=quietly,
    )


def _renewal(config: Mapping[str, Any], session: AuthSession, raw: str | None) -> Renewal:
    access = mint_access_token(
        config,
        user_id=session.user_id,
        session_id=session.id,
        email=session.email,
        name=session.name,
    )
    user = SessionUser(session.user_id, session.login, session.email, session.name)
    return Renewal(access, raw, user, _aware(session.expires_at))
