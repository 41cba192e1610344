"""Round trips of a consume (POST /api/usage/generations), counted on the engine and on Redis,
so the lean path can't regress.

PostgreSQL, a user whose plan and period are settled: the account read and one statement that
adds within the limit and records the outcome (or finds the key's first entry), both in
autocommit (no BEGIN, no COMMIT): 2 round trips. The per-user and per-IP limits are one Redis
call. SQLite (and a settle or a credit spend on PostgreSQL) is the transactional path.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from app_instance import serve_instance
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, update
from support import Billing, auth_headers, is_postgres
from tcp_proxy import TcpProxy

from app.extensions import db
from app.models import User

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Counted:
    statements: list[str] = field(default_factory=list)
    commits: int = 0
    begins: int = 0


@contextmanager
def counting(app: Flask) -> Iterator[Counted]:
    counted = Counted()
    # Only the request's own statements: the in-process applier thread polls the inbox on the
    # same engine, and its due probe landing inside the window is not the consume's round trip.
    request_thread = threading.get_ident()

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.get_ident() == request_thread:
            counted.statements.append(" ".join(statement.split())[:60])

    # SQLAlchemy reports a begin and a commit on a connection in autocommit too, where the
    # driver sends neither (psycopg sends BEGIN itself, on its first statement otherwise).
    def sends_transactions(conn: Any) -> bool:
        return not getattr(conn.connection.driver_connection, "autocommit", False)

    def on_begin(conn: Any) -> None:
        if threading.get_ident() == request_thread:
            counted.begins += sends_transactions(conn)

    def on_commit(conn: Any) -> None:
        if threading.get_ident() == request_thread:
            counted.commits += sends_transactions(conn)

    hooks = {"before_cursor_execute": on_statement, "begin": on_begin, "commit": on_commit}
    with app.app_context():
        engine = db.engine
    for name, hook in hooks.items():
        event.listen(engine, name, hook)
    try:
        yield counted
    finally:
        for name, hook in hooks.items():
            event.remove(engine, name, hook)


def consume(client: FlaskClient, user: str, key: str, count: int = 1) -> Any:
    return client.post(
        "/api/usage/generations",
        json={"count": count, "idempotencyKey": key},
        headers=auth_headers(user),
    )


def test_a_settled_users_consume_is_two_statements_in_autocommit_on_postgresql(
    app: Flask, client: FlaskClient
) -> None:
    user = "lean-consumer"
    assert consume(client, user, "first").status_code == 200  # creates and settles the user
    with counting(app) as counted:
        granted = consume(client, user, "second")
    assert granted.status_code == 200 and granted.get_json()["generationsUsed"] == 2
    with counting(app) as replayed_counted:
        replayed = consume(client, user, "second")
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.get_json() == {**granted.get_json(), "replayed": True}
    if not is_postgres():
        return
    for each in (counted, replayed_counted):
        assert [s.split()[0] for s in each.statements] == ["SELECT", "WITH"], each.statements
        assert (each.begins, each.commits) == (0, 0), each


def test_a_refusal_and_its_replay_are_one_statement_too(app: Flask, client: FlaskClient) -> None:
    user = "lean-refused"
    assert consume(client, user, "warm").status_code == 200
    with counting(app) as counted:
        refused = consume(client, user, "too-many", count=100)
        again = consume(client, user, "too-many", count=100)
    assert refused.status_code == 402 and again.status_code == 402
    assert refused.get_json()["error"]["generationsUsed"] == 1
    assert again.get_json()["error"] == {**refused.get_json()["error"], "replayed": True}
    if is_postgres():
        # Each refusal also leaves its audit entry (as every refused request does).
        consumed = [s for s in counted.statements if not s.startswith("INSERT INTO audit_log")]
        assert [s.split()[0] for s in consumed] == ["SELECT", "WITH"] * 2, counted


def test_credits_beyond_the_quota_take_the_transactional_path(
    app: Flask, client: FlaskClient
) -> None:
    user = "lean-credits"
    assert consume(client, user, "warm").status_code == 200
    with app.app_context():
        limit = db.session.get(User, user).generations_limit
        db.session.execute(
            update(User).where(User.id == user).values(generations_used=limit, credit_balance=5)
        )
        db.session.commit()
    paid = consume(client, user, "with-credits", count=2)
    assert paid.status_code == 200, paid.get_json()
    assert consume(client, user, "with-credits", count=2).headers["Idempotent-Replayed"] == "true"
    refused = consume(client, user, "beyond-credits", count=4)
    assert refused.status_code == 402
    with app.app_context():
        row = db.session.get(User, user)
        assert (row.generations_used, row.credit_balance) == (limit, 3)


def test_the_per_user_and_per_ip_limits_are_one_redis_call(app: Flask, billing: Billing) -> None:
    target = urlsplit(REDIS_URL)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    prefix = f"test-lean-{uuid.uuid4().hex}"
    settings = {
        "RATE_LIMIT_ENABLED": True,
        "RATE_LIMIT_USAGE": "2/minute;100/hour",
        "RATE_LIMIT_IP": "50/minute",
        "REDIS_URL": f"redis://{proxy.host}:{proxy.port}{target.path}",
        "RATE_LIMIT_KEY_PREFIX": prefix,
    }
    watcher = redis.Redis.from_url(REDIS_URL)
    try:
        with serve_instance(app, **settings) as instance:
            client = instance.app.test_client()
            assert consume(client, "lean-limited", "warm").status_code == 200  # loads the script
            proxy.client_chunks.clear()
            assert consume(client, "lean-limited", "counted").status_code == 200
            assert len(proxy.client_chunks) == 1, proxy.client_chunks
            assert proxy.client_chunks[0].startswith(b"*")  # one EVALSHA over the three keys
            keys = list(watcher.scan_iter(f"*{prefix}*"))
            assert len(keys) == 3, keys  # the user's two windows and the IP's one
            assert all(watcher.ttl(key) > 0 for key in keys)
            third = consume(client, "lean-limited", "refused")
            assert third.status_code == 429 and third.get_json()["error"]["retryAfter"] >= 1
    finally:
        proxy.stop()
        for key in watcher.scan_iter(f"*{prefix}*"):
            watcher.delete(key)


def test_connections_go_back_to_the_pool_out_of_autocommit(app: Flask, client: FlaskClient) -> None:
    """The account read and the consume switch the driver's autocommit on for their
    statement; every connection handed back to the pool has it off again (a later
    transaction on it must BEGIN), refusals and replays included."""
    if not is_postgres():
        return
    user = "lean-pool"
    assert consume(client, user, "warm").status_code == 200
    with app.app_context():
        engine = db.engine
    returned: list[bool] = []

    def on_checkin(driver_connection: Any, _record: Any) -> None:
        if driver_connection is not None:
            returned.append(bool(driver_connection.autocommit))

    event.listen(engine, "checkin", on_checkin)
    try:
        assert consume(client, user, "granted").status_code == 200
        assert consume(client, user, "granted").headers["Idempotent-Replayed"] == "true"
        assert consume(client, user, "refused", count=100).status_code == 402
        assert client.get("/api/me", headers=auth_headers(user)).status_code == 200
    finally:
        event.remove(engine, "checkin", on_checkin)
    assert returned and not any(returned), returned


def test_a_connection_that_cannot_leave_autocommit_is_dropped(app: Flask) -> None:
    """Never back to the pool in autocommit: one whose switch back fails is invalidated."""
    if not is_postgres():
        return
    from app.db import autocommit_connection

    invalidated: list[Any] = []

    def on_invalidate(driver_connection: Any, _record: Any, _exc: Any) -> None:
        invalidated.append(driver_connection)

    with app.app_context():
        engine = db.engine
        event.listen(engine, "invalidate", on_invalidate)
        try:
            with autocommit_connection() as connection:
                driver = connection.connection.driver_connection
                driver.close()  # switching autocommit off now fails
        finally:
            event.remove(engine, "invalidate", on_invalidate)
        assert invalidated == [driver]
        with autocommit_connection() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
            assert connection.connection.driver_connection is not driver
