"""Fixtures: a live Stripe sandbox, the app served on a real port (so the sandbox can deliver
webhooks to it), a database migrated with Alembic (SQLite by default, PostgreSQL when
TEST_DATABASE_URL says so). Helpers live in tests/support.py."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request_finished
from flask.testing import FlaskClient
from openapi_conformance import ConformanceChecker
from scratch_db import drop_worker_database, worker_database_url
from sqlalchemy import text
from support import (
    FRONTEND,
    JWT_SECRET,
    TEST_STRIPE_KEY,
    Billing,
    apply_recorded_events,
    auth_headers,
    database_url,
    github_settings,
    is_postgres,
)
from werkzeug.serving import BaseWSGIServer, make_server

from app import create_app
from app.billing.webhooks.handlers import HANDLED_EVENT_TYPES
from app.extensions import db
from app.stripe.gateway import StripeGateway
from app.stripe.setup import setup_products
from github_sandbox import GitHubSandbox
from stripe_sandbox import Sandbox

# Test modules import these from tests/support.py; the names stay importable from here for
# tests written before the move.
__all__ = [
    "FRONTEND",
    "JWT_SECRET",
    "TEST_STRIPE_KEY",
    "Billing",
    "apply_recorded_events",
    "auth_headers",
    "database_url",
    "github_settings",
    "is_postgres",
]


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


def pytest_sessionfinish(session: pytest.Session) -> None:
    # An xdist worker hands its count to the controller, which prints the summary.
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["conformance_checked"] = CONFORMANCE.checked
        workeroutput["conformance_seen"] = sorted(CONFORMANCE.seen)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent without the plugin
def pytest_testnodedown(node: Any, error: object) -> None:
    output = getattr(node, "workeroutput", {})
    CONFORMANCE.checked += output.get("conformance_checked", 0)
    CONFORMANCE.seen.update(tuple(pair) for pair in output.get("conformance_seen", []))


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


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`-n 2`) each worker process gets a PostgreSQL database of its own
    next to TEST_DATABASE_URL's; on SQLite each worker's files are already its own (tmp_path)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and is_postgres():
        os.environ["TEST_DATABASE_URL"] = worker_database_url(
            os.environ["TEST_DATABASE_URL"], worker
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") and is_postgres():
        drop_worker_database(os.environ["TEST_DATABASE_URL"])


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
    # A test that had only its own instances apply stopped the suite app's thread: the next test
    # (whichever runs next in this worker) starts with it running, as the first one did.
    if app.config.get("WEBHOOK_APPLIER") == "thread":
        app.extensions["webhook_applier"].start()


@pytest.fixture
def client(app: Flask, billing: Billing) -> FlaskClient:
    return app.test_client()


# The property-based and concurrency suites (and the fault-injection ones, which wait for
# Stripe's retries) are `slow`: `make test-fast` leaves them out (and the `browser` tests);
# `make test` runs all but the browser tests. Single tests are marked in their modules.
SLOW_MODULES = frozenset(
    {"test_ordering_property", "test_usage_concurrency", "test_webhook_reliability", "test_faults"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rpartition(".")[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
