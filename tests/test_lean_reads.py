"""The hot requests (GET /api/subscription/<id>, GET /api/me, POST /api/usage/generations) answer
a known user from one plain read (app/billing/accounts/store.py) and take the ORM path whenever
something must be written. What a user notices must not depend on which path answered: a new
email or name is kept, a plan or usage period that time has changed is settled and stored, and
a consume that starts a new period counts in it."""

from __future__ import annotations

import time
from typing import Any

import jwt
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from support import JWT_SECRET, auth_headers

from app.billing.time import datetime_from_ms, ms_from_datetime
from app.billing.usage.entitlements import DAY_MS
from app.extensions import db
from app.models import UsageLedgerEntry, User


def token_headers(user_id: str, **claims: Any) -> dict[str, str]:
    """A bearer token with the given extra claims (email, name)."""
    now = int(time.time())
    payload = {"sub": user_id, "iat": now, "exp": now + 3600, **claims}
    return {"Authorization": f"Bearer {jwt.encode(payload, JWT_SECRET, algorithm='HS256')}"}


def stored_user(app: Flask, user_id: str) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        db.session.expunge(user)
        return user


def me(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    reply = client.get("/api/me", headers=headers)
    assert reply.status_code == 200, reply.get_json()
    body: dict[str, Any] = reply.get_json()
    return body


def test_a_new_email_in_the_token_is_shown_and_kept(app: Flask, client: FlaskClient) -> None:
    assert me(client, token_headers("lean-email", email="old@example.com"))["user"]["email"] == (
        "old@example.com"
    )
    reply = me(client, token_headers("lean-email", email="new@example.com"))
    assert reply["user"]["email"] == "new@example.com"
    assert stored_user(app, "lean-email").email == "new@example.com"
    # A token without the claim keeps what we have.
    assert me(client, token_headers("lean-email"))["user"]["email"] == "new@example.com"


def test_a_new_name_in_the_token_is_kept_by_a_subscription_read(
    app: Flask, client: FlaskClient
) -> None:
    headers = token_headers("lean-name", email="n@example.com", name="Ada")
    assert client.get("/api/subscription/lean-name", headers=headers).status_code == 200
    assert stored_user(app, "lean-name").name == "Ada"
    renamed = token_headers("lean-name", email="n@example.com", name="Ada L.")
    reply = client.get("/api/subscription/lean-name", headers=renamed)
    assert reply.status_code == 200
    assert reply.get_json() == {"subscription": None}
    assert stored_user(app, "lean-name").name == "Ada L."


def test_a_first_read_creates_the_user(app: Flask, client: FlaskClient) -> None:
    reply = me(client, auth_headers("lean-first"))
    assert reply["user"]["id"] == "lean-first"
    assert reply["user"]["tier"] == "free" and reply["subscription"] is None
    assert stored_user(app, "lean-first").email == "lean-first@example.com"


def test_a_stale_cached_tier_is_corrected_and_stored_by_a_read(
    app: Flask, client: FlaskClient
) -> None:
    headers = auth_headers("lean-stale")
    me(client, headers)
    with app.app_context():  # a tier no subscription backs (as a missed webhook would leave)
        db.session.get(User, "lean-stale").subscription_tier = "pro"
        db.session.commit()
    assert me(client, headers)["user"]["tier"] == "free"
    assert stored_user(app, "lean-stale").subscription_tier == "free"
    assert me(client, headers)["user"]["tier"] == "free"  # and now from the plain read


def test_a_consume_after_the_period_ran_out_counts_in_the_new_period(
    app: Flask, client: FlaskClient
) -> None:
    headers = auth_headers("lean-period")

    def consume(count: int, key: str) -> Any:
        body = {"count": count, "idempotencyKey": key}
        return client.post("/api/usage/generations", json=body, headers=headers)

    assert consume(7, "first").status_code == 200
    with app.app_context():  # forty days pass: move the sign-up and the period back
        user = db.session.get(User, "lean-period")
        shift = 40 * DAY_MS
        user.created_at = datetime_from_ms(ms_from_datetime(user.created_at) - shift)
        user.usage_period_start -= shift
        user.usage_period_end -= shift
        db.session.commit()
    # No read in between: the consume itself settles the new period, then counts in it.
    reply = consume(2, "second")
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["generationsUsed"] == 2
    assert reply.get_json()["generationsRemaining"] == 8
    assert stored_user(app, "lean-period").generations_used == 2
    with app.app_context():
        kinds = db.session.execute(
            select(UsageLedgerEntry.kind, UsageLedgerEntry.count, UsageLedgerEntry.result).where(
                UsageLedgerEntry.user_id == "lean-period"
            )
        ).all()
    assert sorted(kinds) == [
        ("consume", 2, "granted"),
        ("consume", 7, "granted"),
        ("reset", 7, "reset"),
    ]
    # The same key again replays, counting nothing.
    again = consume(2, "second")
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert stored_user(app, "lean-period").generations_used == 2
