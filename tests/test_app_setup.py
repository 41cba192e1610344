"""Start-up, configuration, the embedded sandbox default, CORS, OpenAPI and the dev token."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from support import FRONTEND, JWT_SECRET, Billing, auth_headers, pay_hosted_checkout
from werkzeug.serving import make_server

from app import create_app
from app.config import ConfigError
from app.extensions import db


def test_production_refuses_to_start_without_its_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        create_app(
            {
                "APP_ENV": "production",
                "STRIPE_SECRET_KEY": "",
                "AUTH_JWT_SECRET": "x",
                "STRIPE_WEBHOOK_SECRET": "",
                "DATABASE_URL": f"sqlite:///{tmp_path}/p.db",
            }
        )
    message = str(excinfo.value)
    assert "STRIPE_SECRET_KEY" in message and "STRIPE_WEBHOOK_SECRET" in message
    with pytest.raises(ConfigError, match="a way to sign in must be set"):
        create_app({"APP_ENV": "production", "AUTH_JWT_SECRET": "", "AUTH_JWKS_URL": ""})


def test_production_with_its_secrets_starts_without_a_sandbox(tmp_path: Path) -> None:
    app = create_app(
        {
            "APP_ENV": "production",
            "STRIPE_SECRET_KEY": "sk_live_abc",
            "STRIPE_WEBHOOK_SECRET": "whsec_x",
            "STRIPE_PRICE_ID_MONTHLY": "price_1",
            "AUTH_JWT_SECRET": "s" * 40,
            "DATABASE_URL": "postgresql://billing@127.0.0.1:9/billing",
            "METRICS_TOKEN": "metrics-token-for-tests-0123",
        }
    )
    assert "stripe_sandbox" not in app.extensions


def test_health_and_openapi(app: Flask, client: FlaskClient) -> None:
    assert client.get("/api/health").get_json() == {"status": "ok", "database": "ok"}
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api") and not rule.rule.startswith("/api/docs"):
            path = rule.rule.replace("<user_id>", "{userId}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (method, path) in documented, f"{method} {path} is not documented"
    checkout = document["paths"]["/api/create-checkout-session"]["post"]
    schema_ref = checkout["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert {"priceId", "plan", "successUrl", "cancelUrl"} <= set(schema["properties"])
    page = client.get("/api/docs")
    assert page.status_code == 200 and "/api/openapi.json" in page.get_data(as_text=True)


def test_cors_allows_only_the_front_end(client: FlaskClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type",
    }
    ours = client.options("/api/me", headers={"Origin": FRONTEND, **preflight})
    assert ours.headers.get("Access-Control-Allow-Origin") == FRONTEND
    theirs = client.options("/api/me", headers={"Origin": "https://evil.example.com", **preflight})
    assert "Access-Control-Allow-Origin" not in theirs.headers


def exposed(reply: object) -> set[str]:
    listed = reply.headers.get("Access-Control-Expose-Headers", "")  # type: ignore[attr-defined]
    return {name.strip().lower() for name in listed.split(",") if name.strip()}


def test_a_browser_may_read_retry_after_and_the_replay_header(client: FlaskClient) -> None:
    """Issue 18 finding 11: CORS exposed only X-Request-ID, so the TypeScript client's
    `retryAfter` was always null in a browser and a replayed usage call looked new."""
    headers = {**auth_headers("cors-reader"), "Origin": FRONTEND}
    body = {"count": 1, "idempotencyKey": "cors-replay-1"}
    client.post("/api/usage/generations", json=body, headers=headers)
    replayed = client.post("/api/usage/generations", json=body, headers=headers)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert {"retry-after", "idempotent-replayed", "x-request-id"} <= exposed(replayed)
    refused = client.get("/api/me", headers={"Origin": FRONTEND})  # no token: 401
    assert {"retry-after", "idempotent-replayed", "x-request-id"} <= exposed(refused)


def test_the_webhook_grants_no_browser_origin(client: FlaskClient) -> None:
    # Stripe posts server to server; not even the front end's page may call the receiver.
    preflight = {"Origin": FRONTEND, "Access-Control-Request-Method": "POST"}
    reply = client.options("/api/webhooks/stripe", headers=preflight)
    assert "Access-Control-Allow-Origin" not in reply.headers
    assert client.options("/api/me", headers=preflight).headers["Access-Control-Allow-Origin"]


def test_dev_token_command_prints_a_token_for_the_user(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["auth", "token", "cli-user", "--email", "c@x.io"])
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "cli-user" and claims["email"] == "c@x.io"
    assert claims["exp"] > time.time()


def test_a_users_row_appears_on_first_sight(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    from app.models import User

    me = client.get("/api/me", headers=auth_headers("first-sight", "fs@example.com")).get_json()
    assert me["user"] == {
        "id": "first-sight",
        "email": "fs@example.com",
        "tier": "free",
        "status": "free",
        "stripeCustomerId": None,
    }
    assert me["subscription"] is None
    with app.app_context():
        assert db.session.get(User, "first-sight").generations_limit == 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def offline_app(tmp_path: Path) -> Iterator[tuple[Flask, str]]:
    """What `make run` does: no Stripe key, so the embedded sandbox is started and seeded."""
    from flask_migrate import upgrade

    port = _free_port()
    app = create_app(
        {
            "APP_ENV": "development",
            "STRIPE_SECRET_KEY": "",
            "STRIPE_API_BASE": "",
            "STRIPE_PRICE_ID_MONTHLY": "",
            "STRIPE_PRICE_ID_YEARLY": "",
            "STRIPE_WEBHOOK_SECRET": "",
            "SANDBOX_PORT": 0,
            "SANDBOX_STATE_FILE": "",
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "DATABASE_URL": f"sqlite:///{tmp_path}/offline.db",
            "AUTH_JWT_SECRET": JWT_SECRET,
            "FRONTEND_URLS": [FRONTEND],
            "LOG_LEVEL": "WARNING",
        }
    )
    with app.app_context():
        upgrade()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield app, f"http://127.0.0.1:{port}"
    server.shutdown()
    app.extensions["stripe_sandbox"].stop()
    with app.app_context():
        db.engine.dispose()


def test_embedded_sandbox_runs_the_whole_flow_offline(offline_app: tuple[Flask, str]) -> None:
    app, _ = offline_app
    sandbox = app.extensions["stripe_sandbox"]
    assert app.config["STRIPE_SECRET_KEY"].startswith("sk_test_")
    assert app.config["STRIPE_PRICE_ID_MONTHLY"].startswith("price_")
    assert app.config["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")
    client = app.test_client()
    headers = auth_headers("offline-user")
    session = client.post(
        "/api/create-checkout-session", json={"plan": "yearly"}, headers=headers
    ).get_json()["session"]
    assert pay_hosted_checkout(session["url"]).status_code == 303
    assert sandbox.wait_for_webhooks(timeout=20)
    me = client.get("/api/me", headers=headers).get_json()
    assert me["user"]["tier"] == "pro" and me["subscription"]["interval"] == "year"
    assert me["subscription"]["priceId"] == app.config["STRIPE_PRICE_ID_YEARLY"]


def test_development_redirects_land_on_the_demo_page(offline_app: tuple[Flask, str]) -> None:
    """`make run` -> pay: Stripe sends the browser back to a page this app serves."""
    app, url = offline_app
    client = app.test_client()
    headers = auth_headers("dev-redirect-user")
    session = client.post(
        "/api/create-checkout-session", json={"plan": "monthly"}, headers=headers
    ).get_json()["session"]
    assert f'href="{url}/demo/cancel"' in requests.get(session["url"], timeout=10).text
    paid = pay_hosted_checkout(session["url"])
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"{url}/demo/success?session_id={session['id']}"
    landed = requests.get(paid.headers["Location"], timeout=10)
    assert landed.status_code == 200 and "billing demo" in landed.text
    portal = client.post("/api/create-portal-session", json={}, headers=headers).get_json()
    page = requests.get(portal["url"], timeout=10).text
    assert f'href="{url}/demo/account"' in page
