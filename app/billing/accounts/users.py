"""Users appear on first sight: the first authenticated request, or a Stripe object naming them."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app import audit
from app.billing.accounts.rows import AnyUser
from app.db import insert_or_ignore
from app.extensions import db
from app.models import User
from app.safe_text import for_log

log = logging.getLogger(__name__)


def get_or_create_user(user_id: str, *, email: str | None = None, name: str | None = None) -> User:
    return ensure_user(user_id, email=email, name=name)[0]


def ensure_user(
    user_id: str,
    *,
    email: str | None = None,
    name: str | None = None,
    with_subscriptions: bool = False,
) -> tuple[User, bool]:
    """The user row, created on first sight, its email and name kept current; and whether that
    wrote anything (the common case is one SELECT and no write). `with_subscriptions` loads
    the user's subscriptions in the same statement."""
    options = [joinedload(User.subscriptions)] if with_subscriptions else []
    user = db.session.get(User, user_id, options=options)
    wrote = False
    if user is None:
        insert_or_ignore(User, {"id": user_id, "email": email, "name": name})
        user = db.session.get(User, user_id, populate_existing=True)
        if user is None:  # inserted or found just above; not a Python assert (stripped by -O)
            raise RuntimeError(f"user {user_id!r} vanished right after its insert")
        wrote = True
    if _changed(user.email, email):
        user.email = email
        wrote = True
    if _changed(user.name, name):
        user.name = name
        wrote = True
    return user, wrote


def claims_match(user: AnyUser, *, email: str | None, name: str | None) -> bool:
    """True when signing the user in writes nothing: the token's email and name (when it has
    them) are the stored ones, as `ensure_user` would leave them."""
    return not _changed(user.email, email) and not _changed(user.name, name)


def customer_email_stale(user: AnyUser) -> bool:
    """The user's email is not the one their Stripe customer was last given (a sign-in with a
    new email): `app/billing/invoices/service.sync_customer_email` sends it, once."""
    return bool(user.email and user.stripe_customer_id and user.email != user.stripe_customer_email)


def _changed(stored: str | None, claimed: str | None) -> bool:
    # A token without the claim keeps what we have.
    return bool(claimed) and stored != claimed


def user_by_customer(customer_id: str) -> User | None:
    return db.session.execute(
        select(User).where(User.stripe_customer_id == customer_id).with_for_update()
    ).scalar_one_or_none()


def flag_ownership_mismatch(stripe_object: str, *, claimed: str, owner: str | None) -> None:
    """An event's metadata.userId names someone other than the owner we anchored (the user
    linked to the customer): we keep ours, and say so in the log and the audit log."""
    log.warning(
        "ownership mismatch on %s: metadata.userId=%s, stored owner=%s; keeping the stored owner",
        for_log(stripe_object),
        for_log(claimed),
        for_log(owner),
    )
    audit.record(
        "webhook.ownership_mismatch",
        "flagged",
        user_id=owner,
        stripe_object=stripe_object,
        detail=f"metadata.userId={claimed}",
    )
