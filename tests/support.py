"""Helpers shared by the app's tests (test modules import them from here, never from conftest,
which holds only fixtures and hooks): the suite's constants, a signed-in user's headers, the
`Billing` world a test gets, applying recorded webhook events, acting on the sandbox's hosted
pages and signing webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from app_instance import proxied_database_url
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import or_, select
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

from app.auth import issue_dev_token
from app.billing.webhooks.applier import Settings, drain
from app.extensions import db
from app.models import WebhookEvent, utcnow
from app.stripe.gateway import StripeGateway
from github_sandbox import DEV_CLIENT_ID, DEV_CLIENT_SECRET, GitHubSandbox
from stripe_sandbox import Sandbox

FRONTEND = "http://localhost:5173"
JWT_SECRET = "test-jwt-secret-0123456789-abcdefghijklmnop"
TEST_STRIPE_KEY = "sk_test_billing_suite"


def database_url(tmp_dir: str) -> str:
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_dir}/billing-test.db"


def is_postgres() -> bool:
    return os.environ.get("TEST_DATABASE_URL", "").startswith(("postgres://", "postgresql"))


@dataclass
class DatabaseOutage:
    """An instance's database that is gone: PostgreSQL behind a cut TCP proxy; SQLite in a
    directory that does not exist (a volume not mounted). `url` is what the instance uses."""

    url: str
    proxy: TcpProxy | None
    directory: Path

    def end(self, app: Flask) -> None:
        """The database answers again (SQLite: the directory appears, migrated by `app`)."""
        if self.proxy is not None:
            self.proxy.restore()
            return
        self.directory.mkdir()
        with app.app_context():
            upgrade()


@contextmanager
def database_down(app: Flask, tmp_path: Path) -> Iterator[DatabaseOutage]:
    directory = tmp_path / "volume"
    if not is_postgres():
        yield DatabaseOutage(f"sqlite:///{directory}/billing.db", None, directory)
        return
    target = make_url(app.config["DATABASE_URL"])
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    proxy.cut()
    try:
        yield DatabaseOutage(
            proxied_database_url(app.config["DATABASE_URL"], proxy.port), proxy, directory
        )
    finally:
        proxy.stop()


def github_settings(github: GitHubSandbox) -> dict[str, str]:
    return {
        "GITHUB_CLIENT_ID": DEV_CLIENT_ID,
        "GITHUB_CLIENT_SECRET": DEV_CLIENT_SECRET,
        "GITHUB_BASE_URL": str(github.url),
        "GITHUB_API_URL": str(github.url),
    }


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


@contextmanager
def suite_applier_paused(app: Flask) -> Iterator[None]:
    """The suite app's applier thread stopped (joined) for the block, then running again if it
    was: instances share its database, and its thread polls that database, so a test that
    decides which process applies an event (and when) must not race it for the claims."""
    applier = app.extensions["webhook_applier"]
    was_running = applier.is_running
    applier.stop()
    assert not applier.is_running, "the suite's applier thread did not stop"
    try:
        yield
    finally:
        if was_running:
            applier.start()


def apply_recorded_events(app: Flask, timeout: float = 20.0, *, alone: bool = False) -> int:
    """Apply what the app recorded and is due, as its applier thread would, and wait for the
    events another applier holds (claims never overlap: on PostgreSQL they are skipped, not
    waited for) until none is due; how many events this call took. `alone`: no other applier
    runs on the database, so one drain is all (no waiting query)."""
    settings = Settings.from_config(app.config)
    deadline = time.monotonic() + timeout
    taken = 0
    with app.app_context():
        try:
            while True:
                taken += drain(app.extensions["stripe_gateway"], settings)
                # Whatever is still due after this drain is held by another applier (this app's
                # thread or another instance's on the same database, whether or not this app's
                # thread runs): wait for it, unless the caller is the only applier (and counts
                # the statements of the drain alone).
                if alone:
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


def auth_headers(user_id: str, email: str | None = None, ttl_seconds: int = 3600) -> dict[str, str]:
    token = issue_dev_token(
        {"AUTH_JWT_SECRET": JWT_SECRET},
        user_id,
        email=email or f"{user_id}@example.com",
        ttl_seconds=ttl_seconds,
    )
    return {"Authorization": f"Bearer {token}"}


CARD_OK = "4242 4242 4242 4242"
CARD_DECLINED = "4000 0000 0000 0002"
CARD_3DS = "4000 0025 0000 3155"
CARD_FAILS_LATER = "4000 0000 0000 0341"


def pay_hosted_checkout(session_url: str, card: str = CARD_OK, **fields: str) -> requests.Response:
    """Submit the sandbox's hosted checkout form, as a browser would."""
    return requests.post(
        session_url, data={"card_number": card, **fields}, allow_redirects=False, timeout=10
    )


def portal_action(portal_url: str, action: str, **fields: str) -> requests.Response:
    return requests.post(
        portal_url, data={"action": action, **fields}, allow_redirects=False, timeout=10
    )


def sign_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def post_webhook(
    client: FlaskClient, event: dict[str, Any], secret: str, *, timestamp: int | None = None
) -> Any:
    """Deliver a signed event, as Stripe does, then let the app apply what it recorded."""
    payload = json.dumps(event)
    reply = client.post(
        "/api/webhooks/stripe",
        data=payload,
        headers={
            "Stripe-Signature": sign_payload(payload, secret, timestamp),
            "Content-Type": "application/json",
        },
    )
    apply_recorded_events(client.application)
    return reply


def subscribe(
    client: FlaskClient,
    billing: Billing,
    user_id: str,
    *,
    plan: str = "monthly",
    card: str = CARD_OK,
) -> dict[str, Any]:
    """The whole purchase: checkout, pay on the hosted page, webhooks delivered."""
    headers = auth_headers(user_id)
    created = client.post("/api/create-checkout-session", json={"plan": plan}, headers=headers)
    assert created.status_code == 200, created.get_json()
    session = created.get_json()["session"]
    paid = pay_hosted_checkout(session["url"], card)
    assert paid.status_code == 303, paid.text[:500]
    billing.wait_for_webhooks()
    return session


@contextmanager
def serving_json(document: dict[str, Any], path: str = "/") -> Iterator[str]:
    """Serve one JSON document (an identity provider's JWKS, say) on a loopback port; yield its
    URL (`path` only shapes the URL: every GET gets the document)."""
    body = json.dumps(document).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()  # shutdown() then waits 0.05 s, not the default 0.5 s
    try:
        yield f"http://127.0.0.1:{server.server_port}{path}"
    finally:
        server.shutdown()


def wait_until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@contextmanager
def captured_logs(*names: str, level: int = logging.DEBUG) -> Iterator[list[logging.LogRecord]]:
    """The records the named loggers emit at `level` and above while inside (the app's own
    logging setup may have raised their threshold: it is lowered here and put back after)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level)
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(level)
    try:
        yield records
    finally:
        for logger, previous in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(previous)
