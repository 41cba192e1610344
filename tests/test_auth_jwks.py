"""Asymmetric tokens (RS256 and ES256) verified with keys fetched from the IdP's JWKS URL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient
from support import Billing, serving_json

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
STRANGER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(public_key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    key = json.loads(algorithm.to_jwk(public_key))
    return {**key, "kid": kid, "alg": alg, "use": "sig"}


@pytest.fixture
def jwks_url(app: Flask) -> Iterator[str]:
    keys = {
        "keys": [
            jwk(RSA_KEY.public_key(), "rsa-1", "RS256"),
            jwk(EC_KEY.public_key(), "ec-1", "ES256"),
        ]
    }
    with serving_json(keys, "/.well-known/jwks.json") as url:
        app.config.update(
            AUTH_JWKS_URL=url, AUTH_ISSUER="https://id.example.com", AUTH_AUDIENCE="creator-studio"
        )
        yield url
        app.config.update(AUTH_JWKS_URL="", AUTH_ISSUER="", AUTH_AUDIENCE="")


def sign(key: Any, kid: str, alg: str, **claims: Any) -> str:
    base = {
        "sub": "idp-user",
        "email": "idp@example.com",
        "iss": "https://id.example.com",
        "aud": "creator-studio",
        "exp": int(time.time()) + 300,
    }
    return jwt.encode({**base, **claims}, key, algorithm=alg, headers={"kid": kid})


@pytest.mark.parametrize(
    ("key", "kid", "alg"), [(RSA_KEY, "rsa-1", "RS256"), (EC_KEY, "ec-1", "ES256")]
)
def test_tokens_signed_by_the_idp_are_accepted(
    client: FlaskClient, billing: Billing, jwks_url: str, key: Any, kid: str, alg: str
) -> None:
    reply = client.get("/api/me", headers={"Authorization": f"Bearer {sign(key, kid, alg)}"})
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["user"]["id"] == "idp-user"


def test_other_keys_algorithms_and_claims_are_refused(
    client: FlaskClient, billing: Billing, jwks_url: str
) -> None:
    bad_tokens = {
        "unknown key": sign(STRANGER_KEY, "rsa-1", "RS256"),
        "unknown kid": sign(RSA_KEY, "nope", "RS256"),
        "wrong audience": sign(RSA_KEY, "rsa-1", "RS256", aud="other-app"),
        "wrong issuer": sign(RSA_KEY, "rsa-1", "RS256", iss="https://evil.example.com"),
        "expired": sign(RSA_KEY, "rsa-1", "RS256", exp=int(time.time()) - 600),
        "hs256 with the public key": jwt.encode(
            {"sub": "x", "exp": int(time.time()) + 60},
            "not-a-key-0123456789abcdefghijklmnop",
            algorithm="HS256",
            headers={"kid": "rsa-1"},
        ),
    }
    for name, token in bad_tokens.items():
        reply = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 401, name
