"""One checkout under way per user (issue 18, double click): the `checkout_claims` row and
its SQL.

A checkout makes several Stripe calls (the customer, Stripe's live subscriptions, expiring the
older sessions, the new session), and no transaction may stay open across them, so a row lock
alone can't cover them. Instead the user's claim row is locked just long enough to take it (one
short transaction: the lock queues racing requests, per user, on PostgreSQL and SQLite alike);
the request that took it makes the session and records it; the others wait for that record
and are handed the same session. A claim whose maker died is taken over after
CHECKOUT_CLAIM_SECONDS (longer than the Stripe calls can take)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.db import row_for_update, unit_of_work
from app.extensions import db
from app.models import CheckoutClaim, utcnow


@dataclass(frozen=True)
class Made:
    """A session already made for this user and price (hand it back)."""

    session_id: str
    url: str | None
    customer_id: str | None


@dataclass(frozen=True)
class Taken:
    """This request holds the claim: it makes the session (`token` proves it later)."""

    token: str


class Busy:
    """Another request is making this user's session right now."""


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes (stored as UTC).
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def claim(
    user_id: str, price_id: str, *, claim_for: timedelta, reuse_for: timedelta
) -> Made | Taken | Busy:
    """Take the user's checkout claim for `price_id`, or say why not (one short transaction;
    the user's row must exist)."""
    now = utcnow()
    with unit_of_work():
        row = row_for_update(CheckoutClaim, user_id)
        made_at, claimed_at = _aware(row.made_at), _aware(row.claimed_at)
        if (
            row.session_id
            and row.price_id == price_id
            and made_at is not None
            and now - made_at < reuse_for
        ):
            return Made(row.session_id, row.session_url, row.customer_id)
        if row.token and claimed_at is not None and now - claimed_at < claim_for:
            return Busy()
        token = secrets.token_hex(16)
        row.token, row.price_id, row.claimed_at = token, price_id, now
        row.session_id = row.session_url = row.customer_id = None
        row.made_at = None
        return Taken(token)


def record_made(
    user_id: str, token: str, session_id: str, url: str | None, customer: str | None
) -> None:
    """The claim's session is made: hand it to the requests waiting and to later clicks."""
    with unit_of_work():
        db.session.execute(
            update(CheckoutClaim)
            .where(CheckoutClaim.user_id == user_id, CheckoutClaim.token == token)
            .values(
                token=None,
                session_id=session_id,
                session_url=url,
                customer_id=customer,
                made_at=utcnow(),
            )
        )


def release(user_id: str, token: str) -> None:
    """Making the session failed: the next request may try (nothing to hand back)."""
    with unit_of_work():
        db.session.execute(
            update(CheckoutClaim)
            .where(CheckoutClaim.user_id == user_id, CheckoutClaim.token == token)
            .values(token=None, claimed_at=None)
        )


def forget_session(session_id: str) -> None:
    """The session completed (paid): never hand it back again (in the caller's transaction)."""
    db.session.execute(
        update(CheckoutClaim)
        .where(CheckoutClaim.session_id == session_id)
        .values(session_id=None, session_url=None, made_at=None)
    )
