"""Users appear on first sight: the first authenticated request, or a Stripe object naming them."""

from __future__ import annotations

from sqlalchemy.orm import joinedload

from app.database import insert_or_ignore
from app.extensions import db
from app.models import User


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
        assert user is not None
        wrote = True
    if email and user.email != email:
        user.email = email
        wrote = True
    if name and user.name != name:
        user.name = name
        wrote = True
    return user, wrote
