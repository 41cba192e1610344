"""Attacks from issue 9, each one reproduced: hostile strings, deep nesting, huge bodies,
malformed signed events, forged-looking tokens, response headers, small leaks. None may reach a
500, leave a half-written row, or put a trace or secret in a reply."""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any
from urllib.parse import urlparse

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from support import (
    FRONTEND,
    JWT_SECRET,
    Billing,
    auth_headers,
    post_webhook,
    sign_payload,
    subscribe,
)

from app.extensions import db
from app.models import User, WebhookEvent

HOSTILE = ["a\\u0000b", "a\\u001bb", "a\\ud800b", "\\udfff", "line\\r\\nforged"]


def rows(app: Flask, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def raw_post(client: FlaskClient, path: str, text: str, user: str = "hostile") -> Any:
    return client.post(
        path,
        data=text.encode(),
        headers={**auth_headers(user), "Content-Type": "application/json"},
    )


def assert_error(reply: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, reply.get_data(as_text=True)[:300]
    body = reply.get_data(as_text=True)
    assert "Traceback" not in body and JWT_SECRET not in body
    error = reply.get_json()["error"]
    if code:
        assert error["code"] == code, error
    return dict(error)


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/retrieve-checkout-session", '{"sessionId": "%s"}'),
        ("/api/create-checkout-session", '{"plan": "monthly", "metadata": {"note": "%s"}}'),
        ("/api/create-checkout-session", '{"plan": "monthly", "metadata": {"%s": "x"}}'),
        ("/api/create-checkout-session", '{"priceId": "%s"}'),
        ("/api/cancel-subscription", '{"subscriptionId": "%s"}'),
        ("/api/create-portal-session", '{"customerId": "%s"}'),
        ("/api/usage/generations", '{"idempotencyKey": "%s"}'),
    ],
)
def test_control_characters_and_lone_surrogates_in_bodies_are_422(
    app: Flask, client: FlaskClient, billing: Billing, path: str, template: str, value: str
) -> None:
    if "metadata" in template and "note" in template and value == "line\\r\\nforged":
        value = "a\\u0000b"  # line breaks are fine in a metadata value; NUL is not
    before = len(billing.stripe_calls())
    reply = raw_post(client, path, template % value)
    error = assert_error(reply, 422, "validation_error")
    assert "control characters or invalid unicode" in json.dumps(error)
    assert len(billing.stripe_calls()) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0


def test_deep_nesting_is_a_400(client: FlaskClient, billing: Billing) -> None:
    deep = "[" * 30000 + "]" * 30000  # under the body cap; past the parser's recursion limit
    assert_error(raw_post(client, "/api/create-checkout-session", deep), 400, "invalid_json")
    nested: Any = "x"
    for _ in range(40):
        nested = {"a": nested}
    body = json.dumps({"plan": "monthly", "metadata": nested})
    assert_error(raw_post(client, "/api/create-checkout-session", body), 400, "invalid_json")


def test_metadata_limits_are_stripes_and_documented(client: FlaskClient, billing: Billing) -> None:
    for metadata in (
        {f"k{i}": "v" for i in range(50)},
        {"k" * 41: "v"},
        {"k": "v" * 501},
        {"": "v"},
    ):
        reply = client.post(
            "/api/create-checkout-session",
            json={"plan": "monthly", "metadata": metadata},
            headers=auth_headers("meta"),
        )
        assert_error(reply, 422, "validation_error")
    ok = client.post(
        "/api/create-checkout-session",
        json={"plan": "monthly", "metadata": {f"k{i}": "v" * 500 for i in range(49)}},
        headers=auth_headers("meta"),
    )
    assert ok.status_code == 200, ok.get_json()
    document = client.get("/api/openapi.json").get_json()
    schema = document["components"]["schemas"]["CreateCheckoutSessionRequest"]
    metadata_schema = schema["properties"]["metadata"]
    assert metadata_schema["maxProperties"] == 49
    assert metadata_schema["propertyNames"]["maxLength"] == 40
    assert metadata_schema["additionalProperties"]["maxLength"] == 500


@pytest.mark.parametrize("segment", ["a%00b", "a%1bb", "%ED%A0%80", "a%0d%0ab"])
def test_hostile_path_ids_never_500(
    app: Flask, client: FlaskClient, billing: Billing, segment: str
) -> None:
    reply = client.get(f"/api/subscription/{segment}", headers=auth_headers("path-user"))
    assert reply.status_code in (400, 404), reply.get_data(as_text=True)
    assert reply.get_json()["error"]["code"] in ("invalid_path", "user_not_found")


def _token(claims: dict[str, Any]) -> dict[str, str]:
    base = {"exp": int(time.time()) + 600, "iat": int(time.time())}
    return {"Authorization": "Bearer " + jwt.encode({**base, **claims}, JWT_SECRET, "HS256")}


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "a\x00b"},
        {"sub": "\ud800"},
        {"sub": "evil\r\nuser"},
        {"sub": "ok-user", "email": "x\x00@example.com"},
        {"sub": "ok-user", "name": "\udfff"},
    ],
)
def test_hostile_jwt_claims_are_refused_before_the_database(
    app: Flask, client: FlaskClient, billing: Billing, claims: dict[str, Any]
) -> None:
    reply = client.get("/api/me", headers=_token(claims))
    assert_error(reply, 400, "invalid_token_claims")
    assert rows(app, User) == 0


def test_token_lifetime_is_bounded_and_exp_required(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    now = int(time.time())
    for claims in (
        {"sub": "u", "exp": 10**20},  # accepted before: a token valid forever
        {"sub": "u", "iat": now, "exp": now + 2 * 86400},
        {"sub": "u", "iat": now},
    ):
        token = jwt.encode(claims, JWT_SECRET, "HS256")
        reply = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert_error(reply, 401, "invalid_token")
    app.config["AUTH_MAX_TOKEN_LIFETIME_SECONDS"] = 3 * 86400
    try:
        token = jwt.encode({"sub": "u", "iat": now, "exp": now + 2 * 86400}, JWT_SECRET, "HS256")
        assert (
            client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        )
    finally:
        app.config["AUTH_MAX_TOKEN_LIFETIME_SECONDS"] = 86400


def test_api_bodies_are_capped(app: Flask, client: FlaskClient, billing: Billing) -> None:
    big = json.dumps({"plan": "monthly", "metadata": {"k": "v" * (200 * 1024)}})
    reply = raw_post(client, "/api/create-checkout-session", big)
    assert_error(reply, 413, "payload_too_large")
    assert rows(app, User) == 0


def test_webhook_cap_is_checked_on_content_length_before_reading(
    app: Flask, billing: Billing
) -> None:
    # Announce 200 MB and send none of it: an app that reads first would sit waiting.
    address = urlparse(billing.live_url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Stripe-Signature: t=1,v1=00\r\nContent-Length: 209715200\r\n\r\n"
        )
        sock.settimeout(5)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
        head = received.decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head[:200]
    assert "payload_too_large" in head
    assert rows(app, WebhookEvent) == 0


def test_webhook_body_over_the_cap_is_413(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    payload = json.dumps({"id": "evt_big", "type": "x", "pad": "x" * (600 * 1024)})
    reply = client.post(
        "/api/webhooks/stripe",
        data=payload,
        headers={"Stripe-Signature": sign_payload(payload, billing.webhook_secret)},
    )
    assert_error(reply, 413, "payload_too_large")
    assert rows(app, WebhookEvent) == 0


def _event(event_type: str, obj: dict[str, Any], event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
        **extra,
    }


def test_nul_in_checkout_metadata_is_stored_and_applied(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    session = {
        "id": "cs_test_nul",
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "client_reference_id": "nul-user",
        "customer": "cus_nul",
        "subscription": "sub_nul",
        "metadata": {"userId": "nul-user", "note": "a\u0000b\ud800"},
    }
    reply = post_webhook(
        client, _event("checkout.session.completed", session, "evt_nul"), billing.webhook_secret
    )
    # Before: PostgreSQL refused the event row on every delivery and not even the failure was kept.
    assert reply.status_code == 200, reply.get_json()
    with app.app_context():
        row = db.session.get(WebhookEvent, "evt_nul")
        assert row is not None and row.processed
        assert row.data["data"]["object"]["metadata"]["note"] == "a\ufffdb\ufffd"
        assert row.raw_body is not None and "\\u0000" in row.raw_body
        assert db.session.get(User, "nul-user").stripe_customer_id == "cus_nul"


@pytest.mark.parametrize(
    ("event_id", "event"),
    [
        (
            "evt_created_abc",
            {
                **_event("customer.subscription.updated", {"id": "sub_x"}, "evt_created_abc"),
                "created": "abc",
            },
        ),
        (
            "evt_no_sub_id",
            _event(
                "customer.subscription.updated",
                {"object": "subscription", "status": "active"},
                "evt_no_sub_id",
            ),
        ),
        (
            "evt_nul_user",
            _event(
                "checkout.session.completed",
                {
                    "id": "cs_x",
                    "mode": "subscription",
                    "status": "complete",
                    "client_reference_id": "u\u0000x",
                },
                "evt_nul_user",
            ),
        ),
        ("evt_object_list", _event("invoice.paid", [], "evt_object_list")),
    ],
)
def test_signed_events_that_cannot_be_applied_are_recorded_and_alerted(
    app: Flask, client: FlaskClient, billing: Billing, event_id: str, event: dict[str, Any]
) -> None:
    if event_id == "evt_object_list":
        event["data"] = {"object": []}
    reply = post_webhook(client, event, billing.webhook_secret)
    assert_error(reply, 400, "malformed_event")
    with app.app_context():
        row = db.session.get(WebhookEvent, event_id)
        assert row is not None and not row.processed and row.attempts == 1
        assert (row.error or "").startswith("MalformedEvent: malformed event:")
        assert row.raw_body is not None and event_id in row.raw_body
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["billing", "events", "--failed"])
    assert event_id in listed.output and "FAILED" in listed.output
    check = runner.invoke(args=["billing", "check", "--max-age", "0"])
    assert check.exit_code == 1 and event_id in check.output


def test_signatures_dated_in_the_future_are_refused(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    event = _event("radar.early_fraud_warning.created", {"id": "issfr_1"}, "evt_future")
    far = int(time.time()) + 5 * 365 * 86400  # before: valid until then, replayable for years
    assert_error(
        post_webhook(client, event, billing.webhook_secret, timestamp=far), 400, "invalid_signature"
    )
    assert rows(app, WebhookEvent) == 0
    near = int(time.time()) + 5  # clock skew is fine
    assert post_webhook(client, event, billing.webhook_secret, timestamp=near).status_code == 200


EXPECTED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def test_security_headers_on_every_response(client: FlaskClient, billing: Billing) -> None:
    replies = [
        client.get("/api/me", headers=auth_headers("hdr")),
        client.get("/api/subscription/hdr", headers=auth_headers("hdr")),
        client.get("/api/me"),
        client.get("/api/nowhere"),
        client.get("/api/health"),
        client.get("/api/openapi.json"),
        client.post("/api/webhooks/stripe", data="{}"),
        client.options(
            "/api/me", headers={"Origin": FRONTEND, "Access-Control-Request-Method": "GET"}
        ),
    ]
    for reply in replies:
        for name, value in EXPECTED_HEADERS.items():
            assert reply.headers.get(name) == value, (reply.request.path, name)
        assert "Content-Security-Policy" in reply.headers
        assert "Strict-Transport-Security" in reply.headers
    for reply in replies[:3]:
        assert reply.headers["Cache-Control"] == "no-store"


def test_cors_sends_no_credentials_and_caches_preflights(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    preflight = client.options(
        "/api/me",
        headers={
            "Origin": FRONTEND,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.headers.get("Access-Control-Allow-Origin") == FRONTEND
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    assert int(preflight.headers["Access-Control-Max-Age"]) > 0
    real = client.get("/api/me", headers={"Origin": FRONTEND, **auth_headers("cors")})
    assert "Access-Control-Allow-Credentials" not in real.headers


def test_missing_and_foreign_checkout_sessions_look_the_same(
    client: FlaskClient, billing: Billing
) -> None:
    session = subscribe(client, billing, "owner-of-session")
    foreign = client.post(
        "/api/retrieve-checkout-session",
        json={"sessionId": session["id"]},
        headers=auth_headers("snoop"),
    )
    missing = client.post(
        "/api/retrieve-checkout-session",
        json={"sessionId": "cs_test_nope"},
        headers=auth_headers("snoop"),
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.get_json() == missing.get_json()


def test_stripe_messages_are_logged_escaped(
    billing: Billing, caplog: pytest.LogCaptureFixture
) -> None:
    from app.billing.errors import ProviderRejected  # main: business errors in app/billing

    with (
        caplog.at_level(logging.WARNING, logger="app.stripe.gateway"),
        pytest.raises(ProviderRejected),
    ):
        billing.gateway.retrieve_checkout_session("cs_test_x\r\nCRITICAL:forged_line")
    messages = [record.getMessage() for record in caplog.records]
    assert messages and all("\n" not in m and "\r" not in m for m in messages)
    assert any("\\r\\nCRITICAL:forged_line" in m for m in messages)


def test_jwks_outage_is_503_and_logged(
    app: Flask, client: FlaskClient, billing: Billing, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app.config.update(AUTH_JWKS_URL=f"http://127.0.0.1:{port}/jwks.json")
    try:
        token = jwt.encode(
            {"sub": "u", "exp": int(time.time()) + 60}, "k" * 40, "HS256", headers={"kid": "k1"}
        )
        with caplog.at_level(logging.ERROR, logger="app.auth"):
            reply = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert_error(reply, 503, "identity_provider_unavailable")
        assert any("JWKS unreachable" in record.getMessage() for record in caplog.records)
    finally:
        app.config.update(AUTH_JWKS_URL="")


def test_sandbox_control_endpoints_answer_loopback_callers_only(billing: Billing) -> None:
    from werkzeug.test import Client

    client = Client(billing.sandbox.wsgi_app)
    for address in ("203.0.113.5", "10.0.0.7", "::ffff:203.0.113.5", "not-an-ip"):
        for method, path in (("GET", "/_sandbox/requests"), ("POST", "/_sandbox/reset")):
            reply = client.open(path, method=method, environ_base={"REMOTE_ADDR": address})
            assert reply.status_code == 403, (address, path)
    local = client.get("/_sandbox/requests", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert local.status_code == 200
    assert client.get("/_sandbox/requests", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
