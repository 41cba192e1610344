"""Credit packs' SQL: fulfilment (once per Checkout session) and spending, both single guarded
statements, so a replayed webhook or two parallel requests can't count twice."""

from __future__ import annotations

from sqlalchemy import update

from app.billing.accounts.users import user_by_customer
from app.db import insert_or_ignore
from app.extensions import db
from app.models import CreditPurchase, User
from app.stripe.gateway import StripeDict
from app.stripe.objects import object_id

_users = User.__table__.c


def pack_generations(session: StripeDict) -> int:
    """The generations a completed Checkout session bought (0: not a credit pack, or unpaid).
    The metadata is ours: only this server creates sessions, with its secret key."""
    if session.get("mode") != "payment" or session.get("payment_status") != "paid":
        return 0
    raw = (session.get("metadata") or {}).get("creditPackGenerations")
    return int(raw) if isinstance(raw, str) and raw.isdigit() else 0


def fulfil_credit_pack(session: StripeDict) -> bool:
    """Add the pack's generations to the buyer's balance, once per session; True if added."""
    generations = pack_generations(session)
    session_id = object_id(session.get("id"))
    if generations <= 0 or session_id is None:
        return False
    customer_id = object_id(session.get("customer"))
    holder = user_by_customer(customer_id) if customer_id else None
    owner = holder.id if holder is not None else session.get("client_reference_id")
    if not isinstance(owner, str) or db.session.get(User, owner) is None:
        return False
    purchase = {"session_id": session_id, "user_id": owner, "generations": generations}
    if not insert_or_ignore(CreditPurchase, purchase):
        return False  # a replay of a session already fulfilled
    db.session.execute(
        update(User.__table__)
        .where(_users.id == owner)
        .values(credit_balance=_users.credit_balance + generations)
    )
    return True


def spend_credits(user_id: str, count: int) -> int | None:
    """Take `count` from the balance if it holds that many: the balance left, else None."""
    row = db.session.execute(
        update(User.__table__)
        .where(_users.id == user_id, _users.credit_balance >= count)
        .values(credit_balance=_users.credit_balance - count)
        .returning(_users.credit_balance)
    ).first()
    return None if row is None else int(row[0])
