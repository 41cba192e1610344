"""Who owns transactions and what the hot paths no longer do per request (app/db.py,
app/errors.py, app/auth.py): Stripe is never called inside an open transaction, business errors
map to their HTTP status in one table, a dead database connection is replaced without a ping
before every request, and a cached token verification never outlives the token."""

from __future__ import annotations

import time

import jwt
import pytest
from app_instance import proxied_database_url, serve_instance
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from stripe_history import History
from support import JWT_SECRET, Billing, auth_headers, is_postgres
from tcp_proxy import TcpProxy

from app.auth import issue_dev_token, verify_token
from app.billing import errors
from app.billing.subscriptions.store import _store_statement, store_params
from app.db import dialect_name, execute_prebuilt
from app.errors import Unauthorized, billing_status
from app.extensions import db
from app.models import Subscription, User
from app.stripe.gateway import TransactionOpen

# -- the gateway and open transactions -------------------------------------------------------


def test_the_gateway_refuses_to_call_stripe_inside_an_open_transaction(
    app: Flask, billing: Billing
) -> None:
    history = History.fresh(billing, "no-stripe-in-tx")
    history.start()
    with app.app_context():
        db.session.execute(select(User.id)).all()  # a transaction is open now
        with pytest.raises(TransactionOpen):
            billing.gateway.retrieve_subscription(history.subscription_id)
        # The one exception: re-reading a subscription whose row the transaction locked.
        assert billing.gateway.reread_subscription(history.subscription_id)["id"]
        db.session.rollback()
        # Outside a transaction the same call goes through.
        assert billing.gateway.retrieve_subscription(history.subscription_id)["id"]


# -- business errors map to HTTP once ------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidRequest("x", code="unknown_price"), 400),
        (errors.NotFound("x"), 404),
        (errors.Conflict("x"), 409),
        (errors.CardDeclined("x"), 402),
        (errors.ProviderRejected("x"), 400),
        (errors.ProviderRejected("x", missing=True), 404),
        (errors.ProviderUnavailable("x"), 503),
        (errors.BillingError("x"), 400),
    ],
)
def test_each_business_error_has_one_status(error: errors.BillingError, status: int) -> None:
    assert billing_status(error) == status


def test_a_business_error_reaches_the_client_as_json(client: FlaskClient) -> None:
    reply = client.post(
        "/api/create-checkout-session",
        json={"priceId": "price_nobody_sells"},
        headers=auth_headers("e"),
    )
    assert reply.status_code == 400
    assert reply.get_json()["error"]["code"] == "unknown_price"


# -- a dead connection is replaced, with no ping before each request --------------------------


def test_no_ping_before_each_checkout(app: Flask) -> None:
    assert not app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_pre_ping")


@pytest.mark.skipif(not is_postgres(), reason="cutting a connection needs a networked database")
def test_requests_after_the_database_dropped_its_connections_succeed(
    app: Flask, billing: Billing
) -> None:
    target = make_url(app.config["DATABASE_URL"])
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    url = proxied_database_url(app.config["DATABASE_URL"], proxy.port)
    try:
        with serve_instance(app, DATABASE_URL=url) as instance:
            client = instance.app.test_client()
            headers = auth_headers("dropped")
            assert client.get("/api/me", headers=headers).status_code == 200
            proxy.cut()  # the server side goes away: pooled connections are dead
            proxy.restore()  # and the database is reachable again
            reply = client.get("/api/me", headers=headers)
            assert reply.status_code == 200, reply.get_json()
            assert client.get("/api/me", headers=headers).status_code == 200
    finally:
        proxy.stop()


# -- token verification is cached, never past the token's life ---------------------------------


def test_a_cached_verification_still_expires() -> None:
    config = {"AUTH_JWT_SECRET": JWT_SECRET, "AUTH_LEEWAY_SECONDS": 0}
    token = issue_dev_token(config, "short-lived", ttl_seconds=1)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert verify_token(token, config).user_id == "short-lived"
    assert verify_token(token, config).user_id == "short-lived"  # from the cache
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(Unauthorized) as raised:
        verify_token(token, config)
    assert raised.value.code == "token_expired"


def test_the_cache_is_per_key() -> None:
    token = issue_dev_token({"AUTH_JWT_SECRET": JWT_SECRET}, "someone")
    assert verify_token(token, {"AUTH_JWT_SECRET": JWT_SECRET}).user_id == "someone"
    with pytest.raises(Unauthorized):
        verify_token(token, {"AUTH_JWT_SECRET": "another-secret-0123456789-abcdefghijkl"})


# -- the hot paths' prebuilt statements ------------------------------------------------------------


def test_a_prebuilt_statement_refuses_a_missing_parameter_instead_of_sending_null(
    app: Flask,
) -> None:
    # On PostgreSQL the guarded upsert goes to the driver as compiled once; a parameter the
    # caller forgot must fail as it does through SQLAlchemy, not be written as NULL.
    subscription = {"id": "sub_prebuilt", "status": "active", "customer": None}
    with app.app_context():
        statement = _store_statement(dialect_name(), True)
        params = store_params(subscription, 1)
        with pytest.raises(SQLAlchemyError):
            execute_prebuilt(statement, {k: v for k, v in params.items() if k != "status"})
        db.session.rollback()
        assert db.session.get(Subscription, "sub_prebuilt") is None
        execute_prebuilt(statement, params)
        db.session.commit()
        stored = db.session.get(Subscription, "sub_prebuilt")
        assert stored is not None and stored.status == "active" and stored.last_event_created == 1
