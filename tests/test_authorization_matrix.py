"""The authorization matrix, generated from the URL map: every route that is not on the public
allow-list is tried with each broken credential (none, expired, wrong key, alg none, HS256 when
a JWKS is configured, no sub) and must answer 401; a second user using the victim's real ids
gets 404 or only their own data. A new route that forgets `login_required` fails here."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from support import JWT_SECRET, Billing, auth_headers, serving_json, subscribe

# Deliberately public: Stripe's signed webhook, probes, metrics, docs, the price list, the demo.
PUBLIC_ROUTES = {
    "/api/webhooks/stripe",
    "/api/health",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/openapi.json",
    "/api/docs",
    "/api/docs/assets/<name>",
    "/api/plans",
    "/demo",
    "/demo/<path:filename>",
    "/demo/static/<path:filename>",
    "/demo/success",
    "/demo/cancel",
    "/demo/account",
    "/demo/token",
    "/static/<path:filename>",
    # Signing in: GitHub authenticates the callback; the refresh cookie (with its CSRF checks,
    # tests/test_signin_attacks.py) the refresh and sign-out routes.
    "/auth/github/start",
    "/auth/github/callback",
    "/auth/refresh",
    "/auth/logout",
}
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def routes(app: Flask) -> list[tuple[str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule in PUBLIC_ROUTES:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule))
    return found


def concrete(rule: str, values: dict[str, str]) -> str:
    path = rule
    for name, value in values.items():
        path = path.replace(f"<{name}>", value)
    return path


def _unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _broken_credentials() -> dict[str, dict[str, str]]:
    now = int(time.time())
    good = {"sub": "matrix-user", "iat": now, "exp": now + 600}
    return {
        "no token": {},
        "not bearer": {"Authorization": "Basic bWF0cml4OnBhc3M="},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "expired": {
            "Authorization": "Bearer "
            + jwt.encode({**good, "iat": now - 7200, "exp": now - 3600}, JWT_SECRET, "HS256")
        },
        "wrong key": {
            "Authorization": "Bearer " + jwt.encode(good, "another-secret-" + "x" * 30, "HS256")
        },
        "alg none": {"Authorization": "Bearer " + _unsigned(good)},
        "no sub": {
            "Authorization": "Bearer "
            + jwt.encode({"iat": now, "exp": now + 600}, JWT_SECRET, "HS256")
        },
        "no exp": {
            "Authorization": "Bearer " + jwt.encode({"sub": "matrix-user"}, JWT_SECRET, "HS256")
        },
    }


def _request(client: FlaskClient, method: str, path: str, headers: dict[str, str]) -> Any:
    return client.open(path, method=method, json={}, headers=headers)


@pytest.mark.parametrize("attack", sorted(_broken_credentials()))
def test_every_non_public_route_refuses_broken_credentials(
    app: Flask, client: FlaskClient, billing: Billing, attack: str
) -> None:
    headers = _broken_credentials()[attack]
    checked = routes(app)
    assert len(checked) >= 10
    for method, rule in checked:
        reply = _request(client, method, concrete(rule, {"user_id": "matrix-user"}), headers)
        assert reply.status_code == 401, f"{attack}: {method} {rule} answered {reply.status_code}"
        assert reply.get_json()["error"]["code"] in (
            "missing_token",
            "invalid_token",
            "token_expired",
        )


@pytest.fixture
def jwks(app: Flask) -> Iterator[None]:
    key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    document = {"keys": [{**key, "kid": "k1", "alg": "RS256", "use": "sig"}]}
    with serving_json(document, "/jwks.json") as url:
        app.config.update(AUTH_JWKS_URL=url)
        yield
        app.config.update(AUTH_JWKS_URL="")


def test_hs256_tokens_are_refused_when_a_jwks_is_configured(
    app: Flask, client: FlaskClient, billing: Billing, jwks: None
) -> None:
    now = int(time.time())
    claims = {"sub": "matrix-user", "iat": now, "exp": now + 600}
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = jwt.api_jws.PyJWS()
    confused._algorithms["HS256"].prepare_key = lambda key: key  # type: ignore[method-assign]
    attacks = {
        "shared secret": jwt.encode(claims, JWT_SECRET, "HS256", headers={"kid": "k1"}),
        "public key as HMAC secret": confused.encode(
            json.dumps(claims).encode(), pem, "HS256", headers={"kid": "k1"}
        ),
    }
    real = jwt.encode(claims, RSA_KEY, "RS256", headers={"kid": "k1"})
    assert client.get("/api/me", headers={"Authorization": f"Bearer {real}"}).status_code == 200
    for name, token in attacks.items():
        for method, rule in routes(app):
            path = concrete(rule, {"user_id": "matrix-user"})
            reply = _request(client, method, path, {"Authorization": f"Bearer {token}"})
            assert reply.status_code == 401, f"{name}: {method} {rule} -> {reply.status_code}"


def test_another_user_with_the_victims_real_ids_gets_nothing(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    subscribe(client, billing, "matrix-victim")
    victim = client.get("/api/me", headers=auth_headers("matrix-victim")).get_json()
    ids = {
        "userId": "matrix-victim",
        "subscriptionId": victim["subscription"]["id"],
        "customerId": victim["user"]["stripeCustomerId"],
        "sessionId": billing.gateway.client.v1.checkout.sessions.list(
            {"customer": victim["user"]["stripeCustomerId"]}
        )
        .data[0]
        .id,
    }
    document = client.get("/api/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    attacker = auth_headers("matrix-attacker")
    before_posts = len(billing.stripe_calls("POST"))
    for method, rule in routes(app):
        path = concrete(rule, {"user_id": ids["userId"]})
        operation = (
            document["paths"].get(rule.replace("<user_id>", "{userId}"), {}).get(method.lower(), {})
        )
        body: dict[str, Any] = {}
        ref = (
            operation.get("requestBody", {})
            .get("content", {})
            .get("application/json", {})
            .get("schema", {})
            .get("$ref")
        )
        if ref:
            properties = schemas[ref.rsplit("/", 1)[1]].get("properties", {})
            body = {name: value for name, value in ids.items() if name in properties}
            if "plan" in properties:
                body["plan"] = "monthly"
            if "idempotencyKey" in properties:
                body["idempotencyKey"] = "matrix"
        uses_victim_ids = bool(body) or "<" in rule
        reply = client.open(path, method=method, json=body, headers=attacker)
        text = reply.get_data(as_text=True)
        for value in ids.values():
            if value != "matrix-victim":
                assert value not in text, f"{method} {rule} leaked {value}"
        if uses_victim_ids and not (set(body) <= {"plan", "idempotencyKey"}):
            assert reply.status_code == 404, f"{method} {rule} with {body} -> {reply.status_code}"
    assert len(billing.stripe_calls("POST")) == before_posts
    after = client.get("/api/me", headers=auth_headers("matrix-victim")).get_json()
    assert after == victim
