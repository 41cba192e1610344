"""Fixtures: a live Stripe sandbox, the app served on a real port (so the sandbox can deliver
webhooks to it), a database migrated with Alembic (SQLite by default, PostgreSQL when
TEST_DATABASE_URL says so), and helpers to act as a signed-in user."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask, request_finished
from flask.testing import FlaskClient
from openapi_conformance import ConformanceChecker
from sqlalchemy import or_, select, text
from werkzeug.serving import BaseWSGIServer, make_server

from app import create_app
from app.auth import issue_dev_token
from app.billing.webhooks.applier import Settings, drain
from app.billing.webhooks.handlers import HANDLED_EVENT_TYPES
from app.extensions import db
from app.models import WebhookEvent, utcnow
from app.stripe.gateway import StripeGateway
from app.stripe.setup import setup_products
from github_sandbox import DEV_CLIENT_ID, DEV_CLIENT_SECRET, GitHubSandbox
from stripe_sandbox import Sandbox

FRONTEND = "http://localhost:5173"
JWT_SECRET = "test-jwt-secret-0123456789-abcdefghijklmnop"
TEST_STRIPE_KEY = "sk_test_billing_suite"


CONFORMANCE = ConformanceChecker()
request_finished.connect(CONFORMANCE.on_response)


@pytest.fixture(autouse=True)
def responses_match_the_openapi_document() -> Iterator[ConformanceChecker]:
    """Fails the test if any response it caused differs from the OpenAPI document."""
    CONFORMANCE.take_problems()
    yield CONFORMANCE
    problems = CONFORMANCE.take_problems()
    if problems:
        pytest.fail("responses differ from the OpenAPI document:\n" + "\n".join(problems[:20]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CONFORMANCE.checked:
        pairs = len(CONFORMANCE.seen)
        terminalreporter.write_line(
            f"OpenAPI conformance: {CONFORMANCE.checked} responses checked "
            f"({pairs} operation/status pairs)"
        )


# Apps the suite starts in development read a dev stack's Stripe settings from this file: one of
# the suite's own, never a running `make run`'s (instance/stripe-sandbox.json) or another run's.
os.environ.setdefault(
    "SANDBOX_INFO_FILE",
    os.path.join(tempfile.mkdtemp(prefix="billing-suite-"), "stripe-sandbox.json"),
)


def database_url(tmp_dir: str) -> str:
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_dir}/billing-test.db"


def is_postgres() -> bool:
    return os.environ.get("TEST_DATABASE_URL", "").startswith(("postgres://", "postgresql"))


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox()
    sb.start(host="127.0.0.1", port=0)
    yield sb
    sb.stop()


@pytest.fixture(scope="session")
def github() -> Iterator[GitHubSandbox]:
    """The GitHub stand-in every suite app signs users in with (Sign in with GitHub)."""
    sb = GitHubSandbox()
    sb.start(host="127.0.0.1", port=0)
    yield sb
    sb.stop()


def github_settings(github: GitHubSandbox) -> dict[str, str]:
    return {
        "GITHUB_CLIENT_ID": DEV_CLIENT_ID,
        "GITHUB_CLIENT_SECRET": DEV_CLIENT_SECRET,
        "GITHUB_BASE_URL": str(github.url),
        "GITHUB_API_URL": str(github.url),
    }


def _drop_everything() -> None:
    db.drop_all()
    db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.session.commit()


@pytest.fixture(scope="session")
def app(
    sandbox: Sandbox, github: GitHubSandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    from flask_migrate import upgrade

    application = create_app(
        {
            "APP_ENV": "testing",
            "TESTING": True,
            "DATABASE_URL": database_url(str(tmp_path_factory.mktemp("db"))),
            "STRIPE_SECRET_KEY": TEST_STRIPE_KEY,
            "STRIPE_API_BASE": sandbox.url,
            "STRIPE_MAX_NETWORK_RETRIES": 0,
            "FRONTEND_URLS": [FRONTEND],
            "AUTH_JWT_SECRET": JWT_SECRET,
            **github_settings(github),
            "LOG_LEVEL": "WARNING",
            # The shared app runs many users' flows from one IP; tests/test_rate_limits.py
            # checks the limits on instances of their own.
            "RATE_LIMIT_ENABLED": False,
        }
    )
    with application.app_context():
        _drop_everything()
        upgrade()  # the schema comes from the Alembic migrations, as in production
    yield application
    application.extensions["webhook_applier"].stop()
    with application.app_context():
        db.session.remove()
        _drop_everything()
        db.engine.dispose()


@pytest.fixture(scope="session")
def live_url(app: Flask) -> Iterator[str]:
    """The app on a real port: the sandbox delivers webhooks here."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@dataclass
class Billing:
    """One test's Stripe world: the sandbox, its seeded prices and the webhook endpoint."""

    sandbox: Sandbox
    gateway: StripeGateway
    monthly: str
    yearly: str
    webhook_secret: str
    live_url: str
    app: Flask

    def wait_for_webhooks(self) -> None:
        """Every event delivered (acknowledged) and applied."""
        assert self.sandbox.wait_for_webhooks(timeout=20), "webhooks still pending after 20s"
        apply_recorded_events(self.app)

    def stripe_calls(self, method: str | None = None, path_prefix: str = "/v1/") -> list[dict]:
        return [
            r
            for r in self.sandbox.requests
            if r["path"].startswith(path_prefix) and (method is None or r["method"] == method)
        ]


def apply_recorded_events(app: Flask, timeout: float = 20.0) -> int:
    """Apply what the app recorded and is due, as its applier thread would, and wait for the
    events another applier holds (claims never overlap: on PostgreSQL they are skipped, not
    waited for) until none is due; how many events this call took."""
    settings = Settings.from_config(app.config)
    deadline = time.monotonic() + timeout
    taken = 0
    with app.app_context():
        try:
            while True:
                taken += drain(app.extensions["stripe_gateway"], settings)
                if not app.extensions["webhook_applier"].is_running:
                    return taken
                due = db.session.execute(
                    select(WebhookEvent.id).where(
                        WebhookEvent.processed.is_(False),
                        WebhookEvent.parked_at.is_(None),
                        or_(
                            WebhookEvent.next_attempt_at.is_(None),
                            WebhookEvent.next_attempt_at <= utcnow(),
                        ),
                    )
                ).first()
                db.session.rollback()
                if due is None:
                    return taken
                assert time.monotonic() < deadline, "recorded events still not applied"
                time.sleep(0.01)
        finally:
            db.session.remove()


def _clear_tables() -> None:
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def billing(app: Flask, sandbox: Sandbox, live_url: str) -> Iterator[Billing]:
    sandbox.reset()
    sandbox.configure(retry_time_scale=0.0005)
    with app.app_context():
        _clear_tables()
    gateway = StripeGateway(
        TEST_STRIPE_KEY, api_version=app.config["STRIPE_API_VERSION"], api_base=sandbox.url
    )
    prices = setup_products(gateway).price_ids
    endpoint = gateway.create_webhook_endpoint(
        url=f"{live_url}/api/webhooks/stripe", enabled_events=HANDLED_EVENT_TYPES
    )
    app.config.update(
        STRIPE_PRICE_ID_MONTHLY=prices["pro_monthly"],
        STRIPE_PRICE_ID_YEARLY=prices["pro_yearly"],
        STRIPE_PRICE_IDS=[],
        STRIPE_WEBHOOK_SECRET=endpoint["secret"],
    )
    yield Billing(
        sandbox,
        gateway,
        prices["pro_monthly"],
        prices["pro_yearly"],
        endpoint["secret"],
        live_url,
        app,
    )
    sandbox.wait_for_webhooks(timeout=10)


@pytest.fixture
def client(app: Flask, billing: Billing) -> FlaskClient:
    return app.test_client()


def auth_headers(user_id: str, email: str | None = None, ttl_seconds: int = 3600) -> dict[str, str]:
    token = issue_dev_token(
        {"AUTH_JWT_SECRET": JWT_SECRET},
        user_id,
        email=email or f"{user_id}@example.com",
        ttl_seconds=ttl_seconds,
    )
    return {"Authorization": f"Bearer {token}"}


# The property-based and concurrency suites (and the fault-injection ones, which wait for
# Stripe's retries): `make test-fast` skips them with `-m "not slow"`; `make test` runs all.
SLOW_MODULES = frozenset(
    {"test_ordering_property", "test_usage_concurrency", "test_webhook_reliability", "test_faults"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rpartition(".")[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
