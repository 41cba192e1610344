"""Rate limits (the `limits` library): per user and per IP on the routes that spend Stripe calls or
quota, per IP on failed authentication, 429 JSON with Retry-After, client IPs behind a
configured number of proxies, the webhook never limited, and counters shared between app
instances through Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import redis
from app_instance import Instance, serve_instance
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from support import Billing, auth_headers, post_webhook

from app.extensions import RateLimits, db
from app.models import AuditEntry

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def limited(app: Flask, **limits: Any) -> Any:
    """An instance of our own with rate limiting on and tight limits."""
    settings: dict[str, Any] = {
        "RATE_LIMIT_ENABLED": True,
        "RATE_LIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        "REDIS_URL": "",
    }
    settings.update(limits)
    return serve_instance(app, **settings)


def assert_429(reply: Any) -> None:
    assert reply.status_code == 429, reply.get_data(as_text=True)[:300]
    error = reply.get_json()["error"]
    assert error["code"] == "rate_limited" and error["retryAfter"] >= 1
    assert int(reply.headers["Retry-After"]) >= 1


def checkout(client: FlaskClient, user: str, ip: str = "127.0.0.1") -> Any:
    return client.post(
        "/api/create-checkout-session",
        json={"plan": "monthly"},
        headers=auth_headers(user),
        environ_base={"REMOTE_ADDR": ip},
    )


def test_checkout_is_limited_per_user(app: Flask, billing: Billing) -> None:
    with limited(app, RATE_LIMIT_CHECKOUT="2/minute") as instance:
        client = instance.app.test_client()
        assert checkout(client, "greedy").status_code == 200
        assert checkout(client, "greedy").status_code == 200
        before = len(billing.stripe_calls("POST", "/v1/checkout"))
        assert_429(checkout(client, "greedy"))
        assert len(billing.stripe_calls("POST", "/v1/checkout")) == before  # no Stripe call
        assert checkout(client, "modest").status_code == 200  # another user is not affected
        with instance.app.app_context():
            entry = db.session.execute(
                select(AuditEntry).where(AuditEntry.action == "rate_limited")
            ).scalar_one()
            assert entry.user_id == "greedy" and entry.outcome == "rate_limited"


def test_all_limited_routes_share_a_per_ip_budget(app: Flask, billing: Billing) -> None:
    with limited(app, RATE_LIMIT_IP="3/minute") as instance:
        client = instance.app.test_client()
        for user in ("a", "b", "c"):
            assert checkout(client, f"ip-{user}", ip="10.0.0.1").status_code == 200
        assert_429(checkout(client, "ip-d", ip="10.0.0.1"))
        assert checkout(client, "ip-d", ip="10.0.0.2").status_code == 200


@pytest.mark.parametrize(
    ("setting", "method", "path", "body"),
    [
        ("RATE_LIMIT_REFRESH", "get", "/api/me?refresh=true", None),
        ("RATE_LIMIT_REFRESH", "get", "/api/subscription/{user}?refresh=true", None),
        ("RATE_LIMIT_CHANGE", "post", "/api/cancel-subscription", {}),
        ("RATE_LIMIT_CHANGE", "post", "/api/resume-subscription", {}),
        ("RATE_LIMIT_PORTAL", "post", "/api/create-portal-session", {}),
        ("RATE_LIMIT_USAGE", "post", "/api/usage/generations", "key"),
        ("RATE_LIMIT_USAGE", "get", "/api/usage", None),
    ],
)
def test_each_costly_route_is_limited_per_user(
    app: Flask, billing: Billing, setting: str, method: str, path: str, body: Any
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    with limited(app, **{setting: "2/minute"}) as instance:
        client = instance.app.test_client()

        def send() -> Any:
            payload = {"idempotencyKey": uuid.uuid4().hex} if body == "key" else body
            return getattr(client, method)(
                path.format(user=user), json=payload, headers=auth_headers(user)
            )

        for _ in range(2):
            assert send().status_code != 429
        assert_429(send())
        if "refresh" in path:  # plain reads come from the database and are not limited
            plain = path.split("?")[0].format(user=user)
            for _ in range(5):
                assert client.get(plain, headers=auth_headers(user)).status_code == 200


def test_failed_authentication_is_limited_per_ip_but_a_good_token_gets_through(
    app: Flask, billing: Billing
) -> None:
    """Issue 18 finding 5: bad tokens from a shared address (an office, a carrier's NAT) used
    to lock out everyone's good tokens there too. Only failures count, and only against
    requests whose token fails."""
    with limited(app, RATE_LIMIT_FAILED_AUTH="3/minute") as instance:
        client = instance.app.test_client()
        forged = {"Authorization": "Bearer forged.token.here"}
        shared = {"REMOTE_ADDR": "10.9.9.9"}
        for _ in range(3):
            assert client.get("/api/me", headers=forged, environ_base=shared).status_code == 401
        assert_429(client.get("/api/me", headers=forged, environ_base=shared))
        assert_429(client.get("/api/me", environ_base=shared))  # no token is a failure too
        # A good token from that address is served, again and again; it is never counted.
        for _ in range(3):
            ok = client.get("/api/me", headers=auth_headers("x"), environ_base=shared)
            assert ok.status_code == 200, ok.get_data(as_text=True)[:200]
        assert_429(client.get("/api/me", headers=forged, environ_base=shared))
        other = {"REMOTE_ADDR": "10.9.9.8"}
        assert client.get("/api/me", headers=forged, environ_base=other).status_code == 401


def test_the_webhook_is_not_limited(app: Flask, billing: Billing) -> None:
    with limited(app, RATE_LIMIT_IP="1/minute", RATE_LIMIT_FAILED_AUTH="1/minute") as instance:
        client = instance.app.test_client()
        for n in range(5):
            event = {
                "id": f"evt_unlimited_{n}",
                "object": "event",
                "type": "radar.early_fraud_warning.created",
                "created": 1700000000,
                "data": {"object": {"id": "issfr_1"}},
            }
            assert post_webhook(client, event, billing.webhook_secret).status_code == 200


def test_client_ip_comes_from_the_configured_number_of_proxies(
    app: Flask, billing: Billing
) -> None:
    with limited(app, RATE_LIMIT_IP="1/minute", TRUSTED_PROXY_COUNT=1) as instance:
        client = instance.app.test_client()

        def via_proxy(user: str, forwarded_for: str) -> Any:
            return client.post(
                "/api/create-checkout-session",
                json={"plan": "monthly"},
                headers={**auth_headers(user), "X-Forwarded-For": forwarded_for},
            )

        assert via_proxy("p1", "203.0.113.1").status_code == 200
        assert_429(via_proxy("p2", "203.0.113.1"))
        assert via_proxy("p3", "203.0.113.2").status_code == 200
        # A client can't pick its own address: only the last hop, the one our proxy added, counts.
        assert_429(via_proxy("p4", "198.51.100.7, 203.0.113.2"))
    with limited(app, RATE_LIMIT_IP="1/minute") as direct:
        client = direct.app.test_client()
        assert via_direct(client, "d1", "203.0.113.3").status_code == 200
        assert_429(via_direct(client, "d2", "203.0.113.4"))  # no proxies: the header is ignored


def via_direct(client: FlaskClient, user: str, forwarded_for: str) -> Any:
    return client.post(
        "/api/create-checkout-session",
        json={"plan": "monthly"},
        headers={**auth_headers(user), "X-Forwarded-For": forwarded_for},
    )


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"test-shared-{uuid.uuid4().hex}"
    yield prefix
    connection = redis.Redis.from_url(REDIS_URL)
    for key in connection.scan_iter(f"*{prefix}*"):
        connection.delete(key)


def test_two_instances_share_counters_through_redis(
    app: Flask, billing: Billing, redis_prefix: str
) -> None:
    settings = {
        "RATE_LIMIT_ENABLED": True,
        "RATE_LIMIT_CHECKOUT": "3/minute",
        "REDIS_URL": REDIS_URL,
        "RATE_LIMIT_KEY_PREFIX": redis_prefix,
    }
    with ExitStack() as stack:
        instances: list[Instance] = [
            stack.enter_context(serve_instance(app, **settings)) for _ in range(2)
        ]
        clients = [instance.app.test_client() for instance in instances]
        statuses = [checkout(clients[n % 2], "roamer").status_code for n in range(4)]
        # Alone, each instance would allow 3: together they allow 3 in all.
        assert statuses == [200, 200, 200, 429]
        keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(f"*{redis_prefix}*"))
        assert keys, "the counters are not in Redis"


def test_memory_storage_is_per_instance_and_breaches_reach_the_hook(
    app: Flask, billing: Billing
) -> None:
    breaches: list[tuple[str, str]] = []
    with ExitStack() as stack:
        first = stack.enter_context(limited(app, RATE_LIMIT_CHECKOUT="1/minute"))
        second = stack.enter_context(limited(app, RATE_LIMIT_CHECKOUT="1/minute"))
        RateLimits.on_breach(first.app, lambda scope, kind: breaches.append((scope, kind)))
        assert checkout(first.app.test_client(), "solo").status_code == 200
        assert checkout(second.app.test_client(), "solo").status_code == 200
        assert_429(checkout(first.app.test_client(), "solo"))
    assert breaches == [("checkout", "user")]


def test_a_breach_is_counted_in_the_metrics(app: Flask, billing: Billing) -> None:
    def refused_checkouts(client: FlaskClient) -> float:
        text = client.get("/metrics").get_data(as_text=True)
        line = next(
            (
                ln
                for ln in text.splitlines()
                if ln.startswith('billing_rate_limited_total{scope="checkout"}')
            ),
            None,
        )
        return float(line.split()[-1]) if line else 0.0

    with limited(app, RATE_LIMIT_CHECKOUT="1/minute") as instance:
        client = instance.app.test_client()
        before = refused_checkouts(client)
        assert checkout(client, "counted").status_code == 200
        assert_429(checkout(client, "counted"))
        assert refused_checkouts(client) == before + 1


def test_an_unreachable_redis_fails_open(app: Flask, billing: Billing) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = f"redis://127.0.0.1:{port}/0"
    with limited(app, REDIS_URL=dead, RATE_LIMIT_CHECKOUT="1/minute") as instance:
        client = instance.app.test_client()
        # Billing keeps working without its abuse counters (and logs that it is unprotected).
        assert checkout(client, "redisless").status_code == 200
        assert checkout(client, "redisless").status_code == 200
