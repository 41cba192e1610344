"""The deployment entry points as an operator runs them, outside a container: the release step
(two at once), the production start script refusing development settings, and the files
Docker, Compose and Render read."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from alembic.script import ScriptDirectory
from flask import Flask
from processes import ROOT, base_env
from scratch_db import scratch_database
from sqlalchemy import create_engine, inspect, text
from support import Billing

from app.config import normalize_database_url
from app.preflight import production_problems

pytestmark = pytest.mark.slow


def _heads() -> list[str]:
    return sorted(ScriptDirectory(str(ROOT / "migrations")).get_heads())


def test_two_release_steps_at_once_migrate_once(app: Flask, tmp_path: Path) -> None:
    with scratch_database(app.config["DATABASE_URL"], tmp_path) as url:
        env = base_env(APP_ENV="testing", DATABASE_URL=url, LOG_FORMAT="json")
        releases = [
            subprocess.Popen(
                [str(ROOT / "bin" / "release")],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [release.communicate(timeout=120) for release in releases]
        for release, (stdout, stderr) in zip(releases, outputs, strict=True):
            assert release.returncode == 0, stderr
            assert "release: database at head" in stdout
        # One of them ran the migrations, the other waited and found nothing to do.
        ran = ["Running upgrade" in stderr for _, stderr in outputs]
        assert sorted(ran) == [False, True], outputs
        engine = create_engine(normalize_database_url(url))
        try:
            with engine.connect() as connection:
                versions = connection.execute(text("SELECT version_num FROM alembic_version"))
                assert sorted(row[0] for row in versions) == _heads()
                assert "webhook_events" in inspect(connection).get_table_names()
        finally:
            engine.dispose()


PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://billing:pw@db.internal:5432/billing",
    "STRIPE_SECRET_KEY": "sk_test_production_like",
    "STRIPE_WEBHOOK_SECRET": "whsec_production_like",
    "STRIPE_PRICE_ID_MONTHLY": "price_monthly",
    "AUTH_JWT_SECRET": "a-production-secret-of-at-least-32-characters",
    "STRIPE_CHECK_AT_START": "0",
    "METRICS_TOKEN": "metrics-token-for-tests-0123",
}


def _env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _start(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "bin" / "start")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_start_script_refuses_the_development_env_file() -> None:
    """`docker run --env-file .env` with .env.example copied to .env: refused, not served."""
    started = _start(base_env(**_env_example()))
    assert started.returncode == 2
    assert "refusing to start: APP_ENV='development'" in started.stderr
    assert "Listening at" not in started.stdout + started.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"APP_ENV": "development"}, "APP_ENV='development'"),
        (
            {"AUTH_JWT_SECRET": "dev-only-jwt-secret-change-me-0123456789"},
            "AUTH_JWT_SECRET is a published development value",
        ),
        ({"DATABASE_URL": "sqlite:///billing-dev.db"}, "DATABASE_URL must be a PostgreSQL URL"),
        ({"STRIPE_SECRET_KEY": ""}, "STRIPE_SECRET_KEY"),
        ({"FLASK_DEBUG": "1"}, "debug mode must be off (FLASK_DEBUG)"),
    ],
)
def test_start_script_refuses_each_development_setting(
    override: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**PRODUCTION, **override}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert any(message in problem for problem in production_problems(env))


def test_start_script_warns_about_the_stripe_setup_then_starts_gunicorn(
    billing: Billing,
) -> None:
    """Preflight accepts production settings; the Stripe check warns (no endpoint for
    PUBLIC_URL) without stopping the start; gunicorn then loads gunicorn.conf.py and the app
    (told to only check its configuration, it exits 0)."""
    env = base_env(
        **{
            **PRODUCTION,
            "STRIPE_CHECK_AT_START": "1",
            "STRIPE_API_BASE": billing.sandbox.url,
            "STRIPE_PRICE_ID_MONTHLY": billing.monthly,
            "PUBLIC_URL": "https://billing.example.com",
            "GUNICORN_CMD_ARGS": "--check-config",
        }
    )
    started = _start(env)
    assert started.returncode == 0, started.stderr
    assert "refusing to start" not in started.stderr
    assert "stripe: no webhook endpoint for https://billing.example.com/api/webhooks/stripe" in (
        started.stderr
    )


def test_dockerfile_compose_and_render_agree_with_the_repository() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("\nFROM ") + dockerfile.startswith("FROM ") >= 2  # multi-stage
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert 'CMD ["bin/start"]' in dockerfile and "USER 10001" in dockerfile
    assert "chown" not in dockerfile  # the runtime user can't write the code
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "**/__pycache__" in ignored and ".git" in ignored and ".env" in ignored
    assert (ROOT / "Procfile").read_text().split("\n")[:2] == [
        "release: bin/release",
        "web: bin/start",
    ]

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"api", "postgres", "redis", "sandbox", "stripe-mock", "migrate"} <= set(services)
    assert services["stripe-mock"]["profiles"] == ["stripe-mock"]
    assert services["migrate"]["command"] == ["bin/release"]
    assert "bin/start" in " ".join(services["api"]["command"])

    render = yaml.safe_load((ROOT / "render.yaml").read_text())
    web = next(s for s in render["services"] if s["type"] == "web")
    assert web["healthCheckPath"] == "/readyz"
    assert web["preDeployCommand"] == "bin/release" and web["dockerCommand"] == "bin/start"
    crons = {s["dockerCommand"] for s in render["services"] if s["type"] == "cron"}
    assert {c.split("billing ", 1)[1] for c in crons} == {"sync --events", "sync", "check --stripe"}
    assert any(s["type"] == "keyvalue" for s in render["services"]) and render["databases"]
    for path in ("bin/start", "bin/release"):
        assert (ROOT / path).stat().st_mode & 0o111, f"{path} is executable"


def test_compose_sandbox_gives_browsers_its_published_address() -> None:
    """In Compose the API calls http://sandbox:12111; the hosted page's URL it hands the
    browser must use the published address (`--public-url`) instead."""
    from app.stripe.gateway import StripeGateway
    from app.stripe.setup import setup_products
    from stripe_sandbox import Sandbox

    sandbox = Sandbox()
    sandbox.public_url = "http://127.0.0.1:12111"
    url = sandbox.start(host="127.0.0.1", port=0)
    try:
        gateway = StripeGateway("sk_test_compose", api_version="2026-10-28.endive", api_base=url)
        prices = setup_products(gateway).price_ids
        customer = gateway.create_customer(user_id="compose-user")
        session = gateway.create_checkout_session(
            user_id="compose-user",
            customer_id=customer["id"],
            price_id=prices["pro_monthly"],
            success_url="http://localhost:5173/ok",
            cancel_url="http://localhost:5173/cancel",
            metadata={},
        )
        assert session["url"].startswith("http://127.0.0.1:12111/")
        assert not session["url"].startswith(url)
    finally:
        sandbox.stop()


def test_render_and_compose_ask_for_the_identity_settings() -> None:
    """Issue 22: as deployed, some browser must be able to sign in. Render asks for a GitHub
    OAuth app (or a JWKS / HS256 secret) and generates the session secret; Compose passes the
    same settings through."""
    render = yaml.safe_load((ROOT / "render.yaml").read_text())
    group = {
        entry["key"]: entry
        for entry in next(g for g in render["envVarGroups"] if g["name"] == "billing-settings")[
            "envVars"
        ]
    }
    for asked in ("GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET", "AUTH_JWKS_URL", "AUTH_JWT_SECRET"):
        assert group[asked].get("sync") is False, asked
    assert group["AUTH_SESSION_SECRET"].get("generateValue") is True
    # A generated HS256 secret no front end knows is no way to sign in: not generated any more.
    assert "generateValue" not in group["AUTH_JWT_SECRET"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    api_env = compose["services"]["api"]["environment"]
    for name in (
        "GITHUB_CLIENT_ID",
        "GITHUB_CLIENT_SECRET",
        "AUTH_SESSION_SECRET",
        "AUTH_JWKS_URL",
    ):
        assert name in api_env, name
