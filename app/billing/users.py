"""Users appear on first sight: the first authenticated request, or a Stripe object naming them."""

from __future__ import annotations

from sqlalchemy import select

from app.database import insert_or_ignore
from app.extensions import db
from app.models import User


def get_or_create_user(user_id: str, *, email: str | None = None, name: str | None = None) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        insert_or_ignore(User, {"id": user_id, "email": email, "name": name})
        user = db.session.get(User, user_id, populate_existing=True)
        if user is None:  # inserted or found just above; not a Python assert (stripped by -O)
            raise RuntimeError(f"user {user_id!r} vanished right after its insert")
    if email and user.email != email:
        user.email = email
    if name and user.name != name:
        user.name = name
    return user


def user_by_customer(customer_id: str) -> User | None:
    return db.session.execute(
        select(User).where(User.stripe_customer_id == customer_id).with_for_update()
    ).scalar_one_or_none()
