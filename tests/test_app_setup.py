"""Start-up, configuration, `make run`'s composition with the sandbox, CORS, OpenAPI and the dev
token."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from processes import ROOT, Server, base_env, flask_cli, free_port
from support import FRONTEND, JWT_SECRET, Billing, auth_headers, pay_hosted_checkout, wait_until

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


def cors_headers(reply: object) -> list[tuple[str, str]]:
    return [(k, v) for k, v in reply.headers if k.startswith("Access-") or k == "Vary"]  # type: ignore[attr-defined]


def test_replies_without_an_origin_keep_flask_cors_headers(client: FlaskClient) -> None:
    """The headers of a reply to a request without an Origin are computed once per CORS
    resource and reused (app/__init__.py): the same as flask-cors gives, request after
    request, and a request with an Origin is still decided on its own."""
    first = client.get("/api/openapi.json")
    again = client.get("/api/openapi.json")
    reader = client.get("/api/me", headers=auth_headers("cors-no-origin"))
    assert first.status_code == again.status_code == reader.status_code == 200
    assert cors_headers(first) == cors_headers(again) == cors_headers(reader)
    assert first.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert {"retry-after", "idempotent-replayed", "x-request-id"} <= exposed(again)
    refresh = client.post("/auth/refresh")  # the cookie's route: credentials allowed
    assert refresh.headers["Access-Control-Allow-Credentials"] == "true"
    assert not cors_headers(client.get("/healthz"))  # no CORS resource
    evil = client.get("/api/openapi.json", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in evil.headers
    ours = client.get("/api/openapi.json", headers={"Origin": FRONTEND})
    assert ours.headers["Access-Control-Allow-Origin"] == FRONTEND


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


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    """What `make run` does, as processes: migrate, then bin/dev-stack starts the stand-ins,
    seeds the Stripe sandbox with the app's own setup commands and serves the app with their
    settings (the app has no Stripe key of its own and starts no sandbox). Yields the app's URL
    and the settings the stack published."""
    tmp = tmp_path_factory.mktemp("make-run")
    port = free_port()
    info_file = tmp / "stripe-sandbox.json"
    env = base_env(
        APP_ENV="development",
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp}/dev.db",
        SANDBOX_PORT="0",
        GITHUB_SANDBOX_PORT="0",
        SANDBOX_INFO_FILE=str(info_file),
        AUTH_JWT_SECRET=JWT_SECRET,
        FRONTEND_URL=FRONTEND,
        LOG_LEVEL="WARNING",
    )
    migrated = flask_cli("db", "upgrade", env=env)
    assert migrated.returncode == 0, migrated.stderr
    serve = ["flask", "--app", "wsgi", "run", "--port", str(port), "--no-reload"]
    with open(tmp / "stack.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "bin" / "dev-stack"), "--", sys.executable, "-m", *serve],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, tmp / "stack.log", url=f"http://127.0.0.1:{port}")
    try:
        server.wait_until_ready(timeout=90)
        yield server.url, json.loads(info_file.read_text())
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert not info_file.exists(), "the stack's settings outlived it"


def _me(url: str, user: str) -> dict[str, Any]:
    reply = requests.get(f"{url}/api/me", headers=auth_headers(user), timeout=10)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_make_run_runs_the_whole_flow_offline(make_run: tuple[str, dict[str, Any]]) -> None:
    url, published = make_run
    assert published["STRIPE_SECRET_KEY"].startswith("sk_test_")
    assert published["STRIPE_PRICE_ID_YEARLY"].startswith("price_")
    assert published["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")
    headers = auth_headers("offline-user")
    assert _me(url, "offline-user")["user"]["tier"] == "free"
    created = requests.post(
        f"{url}/api/create-checkout-session", json={"plan": "yearly"}, headers=headers, timeout=10
    )
    assert created.status_code == 200, created.text
    session = created.json()["session"]
    assert session["url"].startswith(published["STRIPE_API_BASE"])
    assert pay_hosted_checkout(session["url"]).status_code == 303
    wait_until(lambda: _me(url, "offline-user")["user"]["tier"] == "pro", timeout=20)
    me = _me(url, "offline-user")
    assert me["subscription"]["interval"] == "year"
    assert me["subscription"]["priceId"] == published["STRIPE_PRICE_ID_YEARLY"]


def test_make_run_offers_the_credit_pack(make_run: tuple[str, dict[str, Any]]) -> None:
    """`make run` seeds the one-time credit pack price, so the demo's "Buy credits" works."""
    url, published = make_run
    assert published["STRIPE_CREDIT_PACK_PRICE_ID"].startswith("price_")
    plans = requests.get(f"{url}/api/plans", timeout=10).json()
    assert plans["creditPack"]["generations"] == 100
    assert plans["creditPack"]["amount"] == 500
    created = requests.post(
        f"{url}/api/create-credit-pack-session",
        json={},
        headers=auth_headers("dev-credits-user"),
        timeout=10,
    )
    assert created.status_code == 200, created.text
    assert created.json()["session"]["url"].startswith(published["STRIPE_API_BASE"])


def test_development_redirects_land_on_the_demo_page(make_run: tuple[str, dict[str, Any]]) -> None:
    """`make run` -> pay: Stripe sends the browser back to a page this app serves."""
    url, _ = make_run
    headers = auth_headers("dev-redirect-user")
    session = requests.post(
        f"{url}/api/create-checkout-session", json={"plan": "monthly"}, headers=headers, timeout=10
    ).json()["session"]
    assert f'href="{url}/demo/cancel"' in requests.get(session["url"], timeout=10).text
    paid = pay_hosted_checkout(session["url"])
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"{url}/demo/success?session_id={session['id']}"
    landed = requests.get(paid.headers["Location"], timeout=10)
    assert landed.status_code == 200 and "billing demo" in landed.text
    wait_until(lambda: _me(url, "dev-redirect-user")["user"]["tier"] == "pro", timeout=20)
    portal = requests.post(
        f"{url}/api/create-portal-session", json={}, headers=headers, timeout=10
    ).json()
    page = requests.get(portal["url"], timeout=10).text
    assert f'href="{url}/demo/account"' in page


def _development(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "APP_ENV": "development",
        "STRIPE_SECRET_KEY": "",
        "STRIPE_API_BASE": "",
        "SANDBOX_INFO_FILE": str(tmp_path / "stripe-sandbox.json"),
        "DATABASE_URL": f"sqlite:///{tmp_path}/dev.db",
        "AUTH_JWT_SECRET": JWT_SECRET,
        **overrides,
    }


def test_serving_in_development_without_stripe_names_make_run(tmp_path: Path) -> None:
    """No key and no running dev stack (none, or one that died): one line saying what to do."""
    with pytest.raises(ConfigError) as refused:
        create_app(_development(tmp_path))
    [problem] = refused.value.problems
    assert "`make run`" in problem and "STRIPE_SECRET_KEY" in problem and "\n" not in problem
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **TEXT)
    stale = {"pid": int(dead.stdout), "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_API_BASE": "x"}
    (tmp_path / "stripe-sandbox.json").write_text(json.dumps(stale))
    with pytest.raises(ConfigError, match="make run"):
        create_app(_development(tmp_path))


def test_one_off_commands_in_development_need_no_stripe(tmp_path: Path) -> None:
    """`make run` migrates and mints the dev token before the stack starts."""
    env = base_env(
        **{k: str(v) for k, v in _development(tmp_path).items() if k != "STRIPE_API_BASE"}
    )
    migrated = flask_cli("db", "upgrade", env=env)
    assert migrated.returncode == 0, migrated.stderr
    token = flask_cli("auth", "token", "dev-user", env=env)
    assert token.returncode == 0, token.stderr
    assert jwt.decode(token.stdout.strip(), JWT_SECRET, algorithms=["HS256"])["sub"] == "dev-user"


TEXT: dict[str, Any] = {"capture_output": True, "text": True, "timeout": 30, "check": False}


def test_readyz_probes_the_database_the_app_uses_when_its_sqlite_path_is_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run`'s default URL is relative (sqlite:///billing-dev.db): the app keeps it in its
    instance folder, and /readyz must look there too, not at an empty file beside the caller."""
    monkeypatch.chdir(tmp_path)
    name = f"readyz-relative-{time.monotonic_ns()}.db"
    app = create_app(
        {
            "APP_ENV": "testing",
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{name}",
            "STRIPE_SECRET_KEY": "sk_test_relative_path",
            "AUTH_JWT_SECRET": JWT_SECRET,
            "REDIS_URL": "",
        }
    )
    in_instance = Path(app.instance_path) / name
    try:
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
        reply = app.test_client().get("/readyz")
        assert reply.status_code == 200, reply.get_json()
        assert reply.get_json()["migrations"] == "at head"
        assert not (tmp_path / name).exists()
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{in_instance}{suffix}").unlink(missing_ok=True)
