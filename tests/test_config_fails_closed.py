"""Configuration fails closed: an unknown APP_ENV, or production missing anything it needs,
refuses to start with one short message listing every problem and a non-zero exit, from
`create_app`, from `import wsgi` (gunicorn) and from the `flask` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from app.config import DEV_JWT_SECRET, ConfigError

ROOT = Path(__file__).resolve().parent.parent
STRONG_SECRET = "k3y-" + "x" * 40
PG_URL = "postgresql://billing@127.0.0.1:9/billing"
PRODUCTION_OK: dict[str, Any] = {
    "APP_ENV": "production",
    "DATABASE_URL": PG_URL,
    "AUTH_JWT_SECRET": STRONG_SECRET,
    "STRIPE_SECRET_KEY": "sk_live_abc",
    "STRIPE_WEBHOOK_SECRET": "whsec_abc",
    "STRIPE_PRICE_ID_MONTHLY": "price_1",
    "METRICS_TOKEN": "metrics-" + "m" * 24,
}
# What a shell would hand the process: nothing of the developer's own environment leaks in.
CLEAN_ENV_KEYS = (
    "APP_ENV",
    "DATABASE_URL",
    "AUTH_JWT_SECRET",
    "AUTH_JWKS_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_PRICE_ID_MONTHLY",
    "STRIPE_PRICE_IDS",
    "FLASK_DEBUG",
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
    "AUTH_SESSION_SECRET",
    "PUBLIC_URL",
    "FRONTEND_URL",
)


def problems_of(**overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        create_app(overrides)
    return excinfo.value.problems


@pytest.mark.parametrize(
    "value", ["Production", "prod", "production ", "", "staging", "PRODUCTION"]
)
def test_an_unknown_app_env_refuses_to_start(value: str) -> None:
    # Before: any of these ran as development, with the published dev JWT secret and the sandbox.
    [problem] = problems_of(APP_ENV=value, STRIPE_SECRET_KEY="sk_test_x")
    assert "APP_ENV" in problem and repr(value) in problem


def test_production_lists_every_missing_setting_at_once() -> None:
    problems = problems_of(APP_ENV="production")
    text = "\n".join(problems)
    for name in (
        "DATABASE_URL",
        "AUTH_JWT_SECRET",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_PRICE_ID_MONTHLY",
        "METRICS_TOKEN",
    ):
        assert name in text, name
    assert len(problems) == 6


def test_production_without_database_url_does_not_fall_back_to_sqlite() -> None:
    settings = {**PRODUCTION_OK, "DATABASE_URL": ""}
    assert problems_of(**settings) == ["DATABASE_URL must be set (postgresql://...)"]
    settings["DATABASE_URL"] = "sqlite:///prod.db"
    assert problems_of(**settings) == ["DATABASE_URL must be a PostgreSQL URL in production"]


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (DEV_JWT_SECRET, "published development value"),
        ("short-secret", "at least 32 bytes"),
        ("", "must be set"),
    ],
)
def test_production_needs_a_strong_jwt_secret_or_a_jwks_url(secret: str, reason: str) -> None:
    [problem] = problems_of(**{**PRODUCTION_OK, "AUTH_JWT_SECRET": secret})
    assert reason in problem
    app = create_app(
        {**PRODUCTION_OK, "AUTH_JWT_SECRET": "", "AUTH_JWKS_URL": "https://id.example/jwks"}
    )
    assert app.config["AUTH_JWT_SECRET"] == ""  # no dev secret filled in beside the JWKS


def test_production_never_runs_debug_or_the_sandbox() -> None:
    assert any("debug" in p for p in problems_of(**{**PRODUCTION_OK, "FLASK_DEBUG": True}))
    assert any(
        "STRIPE_SECRET_KEY" in p for p in problems_of(**{**PRODUCTION_OK, "STRIPE_SECRET_KEY": ""})
    )
    app = create_app(PRODUCTION_OK)
    assert "stripe_sandbox" not in app.extensions
    assert app.config["AUTH_JWT_SECRET"] == STRONG_SECRET


def _run(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV_KEYS}
    env.update(env_extra)
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


BAD_PRODUCTION = {"APP_ENV": "production", "AUTH_JWT_SECRET": DEV_JWT_SECRET}


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "import wsgi"],
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
    ],
    ids=["wsgi-import", "flask-cli"],
)
def test_entry_points_exit_non_zero_with_one_short_message(command: list[str]) -> None:
    result = _run(command, BAD_PRODUCTION)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("billing-api: refusing to start")
    assert len(lines) <= 8
    for name in ("DATABASE_URL", "AUTH_JWT_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
        assert name in result.stderr
    assert DEV_JWT_SECRET not in result.stderr  # problems name settings, never their values


def test_gunicorn_stops_instead_of_restarting_workers() -> None:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    result = _run([str(gunicorn), "-b", "127.0.0.1:0", "wsgi:app"], {"APP_ENV": "prod"})
    assert result.returncode == 3
    assert "APP_ENV must be one of" in result.stderr and "Traceback" not in result.stderr


def test_malformed_numbers_are_reported_with_the_rest() -> None:
    result = _run(
        [sys.executable, "-c", "import wsgi"],
        {"APP_ENV": "production", "STRIPE_WEBHOOK_TOLERANCE": "five"},
    )
    assert result.returncode == 3
    assert "STRIPE_WEBHOOK_TOLERANCE must be a whole number" in result.stderr
    assert "DATABASE_URL" in result.stderr


def test_rate_limits_are_checked_at_start_up() -> None:
    [problem] = problems_of(RATE_LIMIT_CHECKOUT="lots", STRIPE_SECRET_KEY="sk_test_x")
    assert "RATE_LIMIT_CHECKOUT must look like" in problem


def test_the_database_stall_check_must_be_positive() -> None:
    [problem] = problems_of(DB_STALL_SECONDS=0, STRIPE_SECRET_KEY="sk_test_x")
    assert "DB_STALL_SECONDS must be a positive number" in problem


def test_dev_tokens_respect_the_maximum_lifetime(tmp_path: Path) -> None:
    app = create_app(
        {
            "APP_ENV": "testing",
            "DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
            "STRIPE_SECRET_KEY": "sk_test_x",
            "AUTH_JWT_SECRET": STRONG_SECRET,
        }
    )
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["auth", "token", "someone", "--ttl", "999999"])
    assert refused.exit_code != 0 and "AUTH_MAX_TOKEN_LIFETIME_SECONDS" in refused.output
    assert runner.invoke(args=["auth", "token", "someone"]).exit_code == 0


# -- Sign in with GitHub (issue 22) -------------------------------------------------------------

GITHUB_PRODUCTION: dict[str, Any] = {
    **PRODUCTION_OK,
    "AUTH_JWT_SECRET": "",
    "GITHUB_CLIENT_ID": "Ov23liProdApp",
    "GITHUB_CLIENT_SECRET": "gh-client-secret",
    "AUTH_SESSION_SECRET": "s3ss10n-" + "z" * 40,
    "PUBLIC_URL": "https://billing.example.com",
    "FRONTEND_URLS": ["https://studio.github.app"],
}


def test_production_refuses_to_start_with_no_way_to_sign_in() -> None:
    """Before issue 22 a GitHub app was no way to sign in; now neither it, a JWKS nor an HS256
    secret is refused, naming all three."""
    [problem] = problems_of(**{**PRODUCTION_OK, "AUTH_JWT_SECRET": ""})
    for name in ("GITHUB_CLIENT_ID", "AUTH_JWKS_URL", "AUTH_JWT_SECRET"):
        assert name in problem


def test_production_with_github_sign_in_only_starts() -> None:
    app = create_app(GITHUB_PRODUCTION)
    assert app.config["AUTH_JWT_SECRET"] == ""  # no HS256 mode, and no dev secret filled in
    assert app.config["AUTH_COOKIE_SAMESITE"] == "None" and app.config["AUTH_COOKIE_SECURE"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"AUTH_SESSION_SECRET": ""}, "AUTH_SESSION_SECRET must be set"),
        (
            {"AUTH_SESSION_SECRET": "dev-only-session-secret-change-me-0123456789"},
            "AUTH_SESSION_SECRET is a published development value",
        ),
        ({"AUTH_SESSION_SECRET": "short"}, "AUTH_SESSION_SECRET must be at least 32 bytes"),
        (
            {"AUTH_SESSION_SECRET": STRONG_SECRET, "AUTH_JWT_SECRET": STRONG_SECRET},
            "AUTH_SESSION_SECRET must differ from AUTH_JWT_SECRET",
        ),
        ({"PUBLIC_URL": "http://billing.example.com"}, "PUBLIC_URL must be an https:// URL"),
        ({"GITHUB_BASE_URL": "http://127.0.0.1:12120"}, "GITHUB_BASE_URL must be an https://"),
        ({"GITHUB_API_URL": "http://127.0.0.1:12120"}, "GITHUB_API_URL must be an https://"),
        ({"FRONTEND_URLS": ["http://localhost:5173"]}, "FRONTEND_URL must list https://"),
        ({"GITHUB_CLIENT_SECRET": ""}, "must be set together"),
    ],
)
def test_production_github_sign_in_needs_its_secret_and_https(
    override: dict[str, Any], message: str
) -> None:
    problems = problems_of(**{**GITHUB_PRODUCTION, **override})
    assert any(message in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"GITHUB_CLIENT_ID": "only-the-id"}, "must be set together"),
        ({"AUTH_COOKIE_SAMESITE": "sometimes"}, "AUTH_COOKIE_SAMESITE must be Lax, Strict or None"),
        ({"AUTH_COOKIE_SAMESITE": "None"}, "needs an https:// PUBLIC_URL"),
        ({"AUTH_ACCESS_TOKEN_SECONDS": 5}, "AUTH_ACCESS_TOKEN_SECONDS must be between 60"),
        ({"AUTH_ACCESS_TOKEN_SECONDS": 999999}, "AUTH_ACCESS_TOKEN_SECONDS must be between 60"),
        ({"AUTH_SESSION_DAYS": 0}, "AUTH_SESSION_DAYS must be between 1 and 400"),
    ],
)
def test_sign_in_settings_are_checked_in_every_environment(
    override: dict[str, Any], message: str
) -> None:
    [problem] = problems_of(APP_ENV="development", STRIPE_SECRET_KEY="sk_test_x", **override)
    assert message in problem


@pytest.mark.parametrize(
    ("public_url", "frontends", "chosen", "samesite", "secure"),
    [
        # make run: the demo page on the API's own origin, plain http
        ("http://127.0.0.1:3001", ["http://localhost:5173"], "", "Lax", False),
        # a Spark app on *.github.app and the API on Render: cross-site
        ("https://api.onrender.com", ["https://studio.github.app"], "", "None", True),
        # the front end served from the API's host
        ("https://app.example.com", ["https://app.example.com"], "", "Lax", True),
        # api.example.com + app.example.com are same-site: the operator may say Lax
        ("https://api.example.com", ["https://app.example.com"], "lax", "Lax", True),
    ],
)
def test_the_cookie_samesite_default_is_derived_from_the_urls(
    tmp_path: Path,
    public_url: str,
    frontends: list[str],
    chosen: str,
    samesite: str,
    secure: bool,
) -> None:
    app = create_app(
        {
            "APP_ENV": "testing",
            "DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
            "STRIPE_SECRET_KEY": "sk_test_x",
            "PUBLIC_URL": public_url,
            "FRONTEND_URLS": frontends,
            "AUTH_COOKIE_SAMESITE": chosen,
        }
    )
    assert app.config["AUTH_COOKIE_SAMESITE"] == samesite
    assert app.config["AUTH_COOKIE_SECURE"] is secure


def test_the_entry_point_names_the_missing_sign_in_without_values() -> None:
    result = _run(
        [sys.executable, "-c", "import wsgi"],
        {
            **{k: str(v) for k, v in PRODUCTION_OK.items()},
            "AUTH_JWT_SECRET": "",
            "GITHUB_CLIENT_ID": "Ov23liX",
            "GITHUB_CLIENT_SECRET": "gh-secret-value",
        },
    )
    assert result.returncode == 3
    assert "AUTH_SESSION_SECRET must be set" in result.stderr
    assert "gh-secret-value" not in result.stderr


def test_env_example_lists_every_sign_in_setting() -> None:
    from app.signin.settings import signin_from_env

    listed = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    names = set(signin_from_env(lambda _name, default: default))
    assert names | {"RATE_LIMIT_SIGNIN", "RATE_LIMIT_SESSION", "GITHUB_SANDBOX_PORT"} <= listed


def test_a_session_secret_set_without_github_must_still_be_strong() -> None:
    """It verifies the API's own tokens whenever it is set."""
    [problem] = problems_of(**{**PRODUCTION_OK, "AUTH_SESSION_SECRET": "short"})
    assert "AUTH_SESSION_SECRET must be at least 32 bytes" in problem
    assert (
        create_app({**PRODUCTION_OK, "AUTH_SESSION_SECRET": ""}).config["AUTH_SESSION_SECRET"] == ""
    )


@pytest.mark.parametrize(
    ("token", "reason"),
    [("", "must be set"), ("short-token", "at least 16"), ("change-me", "at least 16")],
)
def test_production_refuses_to_start_with_metrics_open_or_weakly_guarded(
    token: str, reason: str
) -> None:
    """Issue 18 finding 10: /metrics was open to anyone in production without a token."""
    [problem] = problems_of(**{**PRODUCTION_OK, "METRICS_TOKEN": token})
    assert "METRICS_TOKEN" in problem and reason in problem
    assert create_app({**PRODUCTION_OK, "METRICS_TOKEN": "m" * 16}).config["METRICS_TOKEN"]
