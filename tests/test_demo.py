"""The demo page and its dev-token endpoint exist in development and testing only; the page is
static HTML plus a script file (no inline script, so `script-src 'self'` works)."""

from __future__ import annotations

import re

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from support import JWT_SECRET, Billing

from app import create_app

# Production refuses SQLite and published secrets (issue 9): a configuration it accepts. The
# database is never reached by these checks.
PRODUCTION = {
    "APP_ENV": "production",
    "AUTH_JWT_SECRET": "k3y-" + "x" * 40,
    "STRIPE_SECRET_KEY": "sk_test_prod_like",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
    "STRIPE_PRICE_ID_MONTHLY": "price_x",
    "DATABASE_URL": "postgresql://billing@127.0.0.1:9/billing",
    "METRICS_TOKEN": "metrics-token-for-tests-0123",
}


@pytest.mark.parametrize("path", ["/demo", "/demo/success", "/demo/cancel", "/demo/account"])
def test_demo_pages_are_served_in_testing(client: FlaskClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<script src="/demo/static/demo.js" defer></script>' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", html, re.IGNORECASE), "inline handler"


def test_demo_assets(client: FlaskClient) -> None:
    script = client.get("/demo/static/demo.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    assert client.get("/demo/static/demo.css").status_code == 200


def test_production_has_no_demo_and_no_dev_tokens() -> None:
    app = create_app(PRODUCTION)
    client = app.test_client()
    for path in ("/demo", "/demo/success", "/demo/static/demo.js"):
        assert client.get(path).status_code == 404, path
    assert client.post("/demo/token", json={"userId": "x"}).status_code == 404
    assert not [r.rule for r in app.url_map.iter_rules() if r.rule.startswith("/demo")]


def test_dev_token_signs_in_a_dev_user(app: Flask, client: FlaskClient, billing: Billing) -> None:
    reply = client.post("/demo/token", json={"userId": "demo-user"})
    assert reply.status_code == 200
    body = reply.get_json()
    claims = jwt.decode(body["token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "demo-user" and claims["email"] == "demo-user@example.com"
    me = client.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200 and me.get_json()["user"]["id"] == "demo-user"


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 422), ({"userId": ""}, 422), ({"userId": "a b"}, 422), ({"userId": "x" * 256}, 422)],
)
def test_dev_token_validates_its_input(client: FlaskClient, body: dict, status: int) -> None:
    reply = client.post("/demo/token", json=body)
    assert reply.status_code == status and reply.get_json()["error"]["code"] == "validation_error"
    assert client.post("/demo/token", data="{", content_type="application/json").status_code == 400


def test_default_redirects_outside_development_go_to_the_front_end(
    client: FlaskClient, billing: Billing
) -> None:
    from support import FRONTEND, auth_headers

    session = client.post(
        "/api/create-checkout-session", json={"plan": "monthly"}, headers=auth_headers("fe-user")
    ).get_json()["session"]
    stored = billing.gateway.client.v1.checkout.sessions.retrieve(session["id"])
    assert stored.success_url == f"{FRONTEND}/billing/success?session_id={{CHECKOUT_SESSION_ID}}"
    assert stored.cancel_url == f"{FRONTEND}/billing/cancel"
