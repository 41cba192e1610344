"""Every endpoint tried with another user's ids, no token, an expired or forged token, bad
prices, foreign redirect URLs, malformed JSON and missing fields: the right status, a clear
JSON error, and nothing written (no rows, no Stripe call)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from support import FRONTEND, JWT_SECRET, Billing, auth_headers, subscribe

from app.extensions import db
from app.models import Subscription, User, WebhookEvent

PROTECTED = [
    ("post", "/api/create-checkout-session", {"plan": "monthly"}),
    ("post", "/api/retrieve-checkout-session", {"sessionId": "cs_test_x"}),
    ("post", "/api/cancel-subscription", {}),
    ("post", "/api/resume-subscription", {}),
    ("post", "/api/create-portal-session", {}),
    ("get", "/api/subscription/someone", None),
    ("get", "/api/me", None),
]


def counts(app: Flask) -> tuple[int, int, int]:
    with app.app_context():
        return (
            db.session.scalar(select(func.count()).select_from(User)) or 0,
            db.session.scalar(select(func.count()).select_from(Subscription)) or 0,
            db.session.scalar(select(func.count()).select_from(WebhookEvent)) or 0,
        )


def call(client: FlaskClient, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return getattr(client, method)(path, json=body, headers=headers)


def assert_error(reply: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, reply.get_data(as_text=True)
    error = reply.get_json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in reply.get_data(as_text=True)
    if code:
        assert error["code"] == code
    return error


def token(claims: dict[str, Any], secret: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"Authorization": "Basic abc"}, "missing_token"),
        ({"Authorization": "Bearer not-a-jwt"}, "invalid_token"),
        (
            {"Authorization": "Bearer " + token({"sub": "u", "exp": int(time.time()) - 3600})},
            "token_expired",
        ),
        (
            {
                "Authorization": "Bearer "
                + token(
                    {"sub": "u", "exp": int(time.time()) + 60},
                    secret="another-secret-0123456789abcdefghij",
                )
            },
            "invalid_token",
        ),
        ({"Authorization": "Bearer " + token({"exp": int(time.time()) + 60})}, "invalid_token"),
    ],
    ids=["none", "basic", "garbage", "expired", "forged", "no-sub"],
)
def test_protected_endpoints_need_a_valid_token(
    app: Flask,
    client: FlaskClient,
    billing: Billing,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    code: str,
) -> None:
    before_calls = len(billing.stripe_calls())
    assert_error(call(client, method, path, body, headers), 401, code)
    assert counts(app) == (0, 0, 0)
    assert len(billing.stripe_calls()) == before_calls


def test_every_api_route_is_protected_or_deliberately_public(app: Flask) -> None:
    public = {
        "/api/webhooks/stripe",
        "/api/health",
        "/api/openapi.json",
        "/api/docs",
        "/api/docs/assets/<name>",
        "/api/plans",
    }
    client = app.test_client()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api") or rule.rule in public:
            continue
        path = rule.rule.replace("<user_id>", "x")
        method = next(iter(rule.methods - {"HEAD", "OPTIONS"}))
        reply = client.open(path, method=method, json={})
        assert reply.status_code == 401, f"{method} {rule.rule} answered {reply.status_code}"


def test_issuer_and_audience_are_enforced_when_configured(app: Flask, billing: Billing) -> None:
    app.config.update(AUTH_ISSUER="https://id.example.com", AUTH_AUDIENCE="billing")
    try:
        client = app.test_client()
        base = {"sub": "aud-user", "exp": int(time.time()) + 60}
        wrong = token({**base, "iss": "https://evil.example.com", "aud": "billing"})
        right = token({**base, "iss": "https://id.example.com", "aud": "billing"})
        assert_error(client.get("/api/me", headers={"Authorization": f"Bearer {wrong}"}), 401)
        assert (
            client.get("/api/me", headers={"Authorization": f"Bearer {right}"}).status_code == 200
        )
    finally:
        app.config.update(AUTH_ISSUER="", AUTH_AUDIENCE="")


def test_other_users_ids_are_not_found(app: Flask, client: FlaskClient, billing: Billing) -> None:
    subscribe(client, billing, "victim")
    victim = client.get("/api/me", headers=auth_headers("victim")).get_json()
    sub_id = victim["subscription"]["id"]
    customer_id = victim["user"]["stripeCustomerId"]
    sessions = billing.gateway.client.v1.checkout.sessions.list({"customer": customer_id})
    attacker = auth_headers("attacker")
    before_calls = len(billing.stripe_calls("POST"))

    attempts = [
        ("get", "/api/subscription/victim", None),
        ("post", "/api/cancel-subscription", {"subscriptionId": sub_id, "immediately": True}),
        ("post", "/api/cancel-subscription", {"subscriptionId": sub_id}),
        ("post", "/api/resume-subscription", {"subscriptionId": sub_id}),
        ("post", "/api/create-portal-session", {"customerId": customer_id}),
        ("post", "/api/create-checkout-session", {"plan": "monthly", "userId": "victim"}),
        ("post", "/api/retrieve-checkout-session", {"sessionId": sessions.data[0].id}),
    ]
    for method, path, body in attempts:
        reply = call(client, method, path, body, attacker)
        error = assert_error(reply, 404)
        assert sub_id not in error["message"] and customer_id not in error["message"]
    # Nothing changed at Stripe or for the victim.
    assert len(billing.stripe_calls("POST")) == before_calls
    after = client.get("/api/me", headers=auth_headers("victim")).get_json()
    assert after == victim


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"priceId": "price_not_ours"}, 400, "unknown_price"),
        ({}, 400, "price_required"),
        ({"plan": "weekly"}, 422, "validation_error"),
        (
            {"plan": "monthly", "successUrl": "https://evil.example.com/x"},
            400,
            "redirect_not_allowed",
        ),
        ({"plan": "monthly", "cancelUrl": "javascript:alert(1)"}, 400, "redirect_not_allowed"),
        ({"plan": "monthly", "successUrl": f"{FRONTEND}.evil.com/x"}, 400, "redirect_not_allowed"),
        ({"plan": "monthly", "mode": "payment"}, 422, "validation_error"),
        ({"plan": "monthly", "surprise": 1}, 422, "validation_error"),
        ({"plan": "monthly", "metadata": {"k": 5}}, 422, "validation_error"),
        ({"priceId": 12}, 422, "validation_error"),
    ],
)
def test_checkout_rejects_bad_input_without_writing(
    app: Flask,
    client: FlaskClient,
    billing: Billing,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    headers = auth_headers("careful")
    client.get("/api/me", headers=headers)  # the user exists; only the checkout is refused
    before = (counts(app), len(billing.stripe_calls()))
    assert_error(
        client.post("/api/create-checkout-session", json=body, headers=headers), status, code
    )
    assert (counts(app), len(billing.stripe_calls())) == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/create-checkout-session",
        "/api/retrieve-checkout-session",
        "/api/cancel-subscription",
        "/api/resume-subscription",
        "/api/create-portal-session",
    ],
)
@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"'])
def test_malformed_json_is_a_clear_400(
    app: Flask, client: FlaskClient, billing: Billing, path: str, raw: bytes
) -> None:
    headers = {**auth_headers("json-user"), "Content-Type": "application/json"}
    client.get("/api/me", headers=headers)
    before = (counts(app), len(billing.stripe_calls()))
    assert_error(client.post(path, data=raw, headers=headers), 400, "invalid_json")
    assert (counts(app), len(billing.stripe_calls())) == before


def test_missing_fields_are_named(client: FlaskClient, billing: Billing) -> None:
    reply = client.post("/api/retrieve-checkout-session", json={}, headers=auth_headers("m"))
    error = assert_error(reply, 422, "validation_error")
    assert error["fields"][0]["field"] == "sessionId"


def test_unknown_checkout_session_is_404_not_500(client: FlaskClient, billing: Billing) -> None:
    reply = client.post(
        "/api/retrieve-checkout-session",
        json={"sessionId": "cs_test_missing"},
        headers=auth_headers("m"),
    )
    error = assert_error(reply, 404)
    assert "cs_test_missing" not in error["message"]


def test_nothing_to_cancel_or_resume_is_404(client: FlaskClient, billing: Billing) -> None:
    headers = auth_headers("nobody-subscribed")
    assert_error(client.post("/api/cancel-subscription", json={}, headers=headers), 404)
    assert_error(client.post("/api/resume-subscription", json={}, headers=headers), 404)


def test_portal_return_url_must_be_ours(client: FlaskClient, billing: Billing) -> None:
    subscribe(client, billing, "portal-user")
    reply = client.post(
        "/api/create-portal-session",
        json={"returnUrl": "https://evil.example.com"},
        headers=auth_headers("portal-user"),
    )
    assert_error(reply, 400, "redirect_not_allowed")


def test_unknown_route_and_method_are_json(client: FlaskClient, billing: Billing) -> None:
    assert_error(client.get("/api/nope"), 404)
    assert_error(client.get("/api/create-checkout-session"), 405)


def test_stripe_unreachable_is_503_without_details(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    from app.stripe.gateway import StripeGateway

    original = app.extensions["stripe_gateway"]
    app.extensions["stripe_gateway"] = StripeGateway(
        "sk_test_x",
        api_version=app.config["STRIPE_API_VERSION"],
        api_base="http://127.0.0.1:9",
        max_network_retries=0,
    )
    try:
        reply = client.post(
            "/api/create-checkout-session",
            json={"plan": "monthly"},
            headers=auth_headers("offline"),
        )
        error = assert_error(reply, 503, "payment_provider_unavailable")
        assert "127.0.0.1" not in error["message"] and "sk_test" not in reply.get_data(as_text=True)
    finally:
        app.extensions["stripe_gateway"] = original
