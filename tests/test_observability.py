"""Request ids, log lines, probes, the metrics endpoint and Sentry's scrubbing, in-process."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from alembic.script import ScriptDirectory
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from scratch_db import scratch_database
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from sqlalchemy.engine import make_url
from support import Billing, auth_headers, is_postgres, post_webhook
from tcp_proxy import TcpProxy

from app import create_app
from app.billing.errors import ProviderRejected
from app.extensions import db
from app.observability import metrics
from app.observability.logging import JsonFormatter, TextFormatter
from app.observability.sentry import init_sentry
from tests.app_instance import proxied_database_url

LOGGERS = ("app.request", "app.stripe.gateway", "app.billing.webhooks")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The app's INFO lines of these loggers, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    yield stream
    for logger, level in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# -- request ids and log lines --------------------------------------------------------------------


def test_request_id_is_echoed_and_on_every_log_line_of_the_request(
    client: FlaskClient, billing: Billing, json_log: io.StringIO
) -> None:
    headers = {**auth_headers("rid-user"), "X-Request-ID": "edge-4f1c.7"}
    reply = client.post("/api/create-checkout-session", json={"plan": "monthly"}, headers=headers)
    assert reply.status_code == 200
    assert reply.headers["X-Request-ID"] == "edge-4f1c.7"

    lines = _lines(json_log)
    assert lines and all(line["request_id"] == "edge-4f1c.7" for line in lines)
    request_line = lines[-1]
    assert request_line["message"] == "request"
    assert (request_line["method"], request_line["route"], request_line["status"]) == (
        "POST",
        "/api/create-checkout-session",
        200,
    )
    assert request_line["user_id"] == "rid-user" and request_line["duration_ms"] > 0
    calls = [line for line in lines if line["message"] == "stripe call"]
    operations = [c["operation"] for c in calls]
    assert operations[0] == "create_customer" and operations[-1] == "create_checkout_session"
    assert all(c["stripe_request_id"].startswith("req_") and c["outcome"] == "ok" for c in calls)


def test_request_id_is_generated_when_missing_or_unsafe(client: FlaskClient) -> None:
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32 and generated != client.get("/healthz").headers["X-Request-ID"]
    forged = client.get("/healthz", headers={"X-Request-ID": "a b level=error"})
    assert forged.headers["X-Request-ID"] not in ("a b level=error", "")
    too_long = client.get("/healthz", headers={"X-Request-ID": "x" * 200})
    assert too_long.headers["X-Request-ID"] != "x" * 200


def test_a_webhook_delivery_gets_a_line_and_its_applier_batch_one_line(
    client: FlaskClient, billing: Billing, json_log: io.StringIO
) -> None:
    event = {
        "id": "evt_logline_1",
        "object": "event",
        "type": "payment_intent.created",
        "created": int(time.time()),
        "data": {"object": {"id": "pi_x", "object": "payment_intent"}},
    }
    assert post_webhook(client, event, billing.webhook_secret).get_json()["status"] == "recorded"
    assert post_webhook(client, event, billing.webhook_secret).get_json()["status"] == "duplicate"
    lines = _lines(json_log)
    # Each delivery's request line says what became of it...
    deliveries = [line for line in lines if line.get("route") == "/api/webhooks/stripe"]
    assert [(d["event_id"], d["event_type"], d["outcome"]) for d in deliveries] == [
        ("evt_logline_1", "payment_intent.created", "recorded"),
        ("evt_logline_1", "payment_intent.created", "duplicate"),
    ]
    assert all(isinstance(d["duration_ms"], float) and d["request_id"] for d in deliveries)
    # ... and the applier's one line per batch what the batch did, with how long it waited
    # (no line per event: which event did what is in the audit log).
    assert not [line for line in lines if line["message"] == "webhook event"]
    batches = [line for line in lines if line["message"] == "webhook batch"]
    assert [(b["events"], b["applied"], b["ignored"], b["failed"]) for b in batches] == [
        (1, 0, 1, 0)
    ]
    assert batches[0]["event_types"] == {"payment_intent.created": 1}
    assert batches[0]["first_event_id"] == batches[0]["last_event_id"] == "evt_logline_1"
    assert isinstance(batches[0]["lag_ms_max"], float)


def test_a_failed_stripe_call_logs_its_error_and_stripe_request_id(
    client: FlaskClient, billing: Billing, json_log: io.StringIO
) -> None:
    with pytest.raises(ProviderRejected) as raised:
        billing.gateway.retrieve_subscription("sub_does_not_exist")
    assert raised.value.missing
    failed = [line for line in _lines(json_log) if line.get("outcome") == "error"]
    assert failed[-1]["operation"] == "retrieve_subscription"
    assert failed[-1]["error"] == "InvalidRequestError"
    assert failed[-1]["stripe_request_id"].startswith("req_")


def test_text_format_is_readable_and_carries_the_fields() -> None:
    record = logging.LogRecord("app.request", logging.INFO, __file__, 1, "request", None, None)
    record.__dict__.update(route="/api/me", status=200, request_id="abc")
    line = TextFormatter().format(record)
    assert "INFO app.request: request" in line
    assert "route=/api/me" in line and "status=200" in line and "request_id=abc" in line


# -- probes ---------------------------------------------------------------------------------------


def test_healthz_and_readyz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.get_json()
    assert body.pop("webhooks").keys() == {"pending", "oldestPendingSeconds"}
    assert body == {"status": "ok", "database": "ok", "migrations": "at head"}
    assert client.get("/api/health").get_json() == {"status": "ok", "database": "ok"}


def _instance(app: Flask, database_url: str) -> Flask:
    return create_app(
        {
            "APP_ENV": "testing",
            "TESTING": True,
            "DATABASE_URL": database_url,
            "STRIPE_SECRET_KEY": app.config["STRIPE_SECRET_KEY"],
            "STRIPE_API_BASE": app.config["STRIPE_API_BASE"],
            "AUTH_JWT_SECRET": app.config["AUTH_JWT_SECRET"],
            "LOG_LEVEL": "CRITICAL",
        }
    )


def test_readyz_fails_while_the_database_is_cut_and_healthz_does_not(
    app: Flask, tmp_path: Path
) -> None:
    if is_postgres():
        target = make_url(app.config["DATABASE_URL"])
        proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
        url = proxied_database_url(app.config["DATABASE_URL"], proxy.port)
    else:  # SQLite: the file's directory is gone, as a lost volume would be
        proxy = None
        url = f"sqlite:///{tmp_path}/gone/billing.db"
    instance = _instance(app, url)
    try:
        probe = instance.test_client()
        if proxy is not None:
            assert probe.get("/readyz").status_code == 200
            proxy.cut()
        cut = probe.get("/readyz")
        assert cut.status_code == 503
        assert cut.get_json() == {"status": "unavailable", "database": "unreachable"}
        assert probe.get("/healthz").status_code == 200  # liveness does no I/O
        if proxy is not None:
            proxy.restore()
            assert probe.get("/readyz").status_code == 200
    finally:
        with instance.app_context():
            db.session.remove()
            db.engine.dispose()
        if proxy is not None:
            proxy.stop()


def test_readyz_fails_with_a_pending_migration(app: Flask, tmp_path: Path) -> None:
    directory = app.extensions["migrate"].directory
    heads = ScriptDirectory(directory).get_heads()
    with scratch_database(app.config["DATABASE_URL"], tmp_path) as url:
        instance = _instance(app, url)
        try:
            with instance.app_context():
                upgrade(directory=directory, revision="0001")
            pending = instance.test_client().get("/readyz")
            assert pending.status_code == 503
            assert pending.get_json()["migrations"] == "pending"
            assert pending.get_json()["expectedHeads"] == sorted(heads)
            with instance.app_context():
                upgrade(directory=directory)
            assert instance.test_client().get("/readyz").status_code == 200
        finally:
            with instance.app_context():
                db.session.remove()
                db.engine.dispose()


# -- metrics --------------------------------------------------------------------------------------


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_endpoint_counts_and_can_require_a_token(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    labels = {"method": "GET", "route": "/api/me", "status": "200"}
    before = _sample("billing_http_requests_total", **labels)
    client.get("/api/me", headers=auth_headers("metrics-me"))
    text = client.get("/metrics").get_data(as_text=True)
    assert _sample("billing_http_requests_total", **labels) == before + 1
    assert "billing_http_request_duration_seconds_bucket" in text
    metrics.count_rate_limited("checkout")
    assert _sample("billing_rate_limited_total", scope="checkout") >= 1

    app.config["METRICS_TOKEN"] = "scrape-token-123"
    try:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "scrape-token" not in wrong.get_data(as_text=True)
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
        assert ok.status_code == 200 and b"billing_http_requests_total" in ok.data
    finally:
        app.config["METRICS_TOKEN"] = ""


def test_usage_decisions_are_counted(client: FlaskClient, billing: Billing) -> None:
    granted = _sample("billing_usage_generations_total", result="granted")
    refused = _sample("billing_usage_generations_total", result="refused")
    headers = auth_headers("metrics-usage")
    ok = client.post(
        "/api/usage/generations", json={"count": 10, "idempotencyKey": "m-1"}, headers=headers
    )
    assert ok.status_code == 200
    assert (
        client.post(
            "/api/usage/generations", json={"count": 1, "idempotencyKey": "m-2"}, headers=headers
        ).status_code
        == 402
    )
    client.post(  # a replay is not a new decision
        "/api/usage/generations", json={"count": 10, "idempotencyKey": "m-1"}, headers=headers
    )
    assert _sample("billing_usage_generations_total", result="granted") == granted + 1
    assert _sample("billing_usage_generations_total", result="refused") == refused + 1


# -- Sentry ---------------------------------------------------------------------------------------


class CaptureTransport(Transport):
    """Keeps what would be sent to Sentry, so the test can read it."""

    captured: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type in ("event", "transaction") and item.payload.json:
                CaptureTransport.captured.append(item.payload.json)


def test_sentry_is_off_without_a_dsn() -> None:
    assert init_sentry({"SENTRY_DSN": ""}) is False


def test_sentry_events_carry_the_request_id_and_no_secrets(app: Flask) -> None:
    stripe_key = "sk_live_51SecretStripeKeyValue0123456789"
    webhook_secret = "whsec_AbCdEf0123456789SecretValue"
    instance = _instance(app, app.config["DATABASE_URL"])
    instance.config["STRIPE_WEBHOOK_SECRET"] = webhook_secret

    def explode() -> None:
        api_key = stripe_key  # a local variable Sentry would ship with the stack frame
        raise RuntimeError(f"Stripe refused key {api_key} and secret {webhook_secret}")

    instance.add_url_rule("/boom", "boom", explode)
    CaptureTransport.captured.clear()
    dsn = "http://publickey@127.0.0.1:9/1"
    assert init_sentry({"SENTRY_DSN": dsn, "APP_ENV": "testing"}, transport=CaptureTransport)
    try:
        token = auth_headers("sentry-user")["Authorization"]
        reply = instance.test_client().get(
            "/boom?api_key=" + stripe_key,
            headers={"Authorization": token, "X-Request-ID": "rid-sentry-1", "Cookie": "s=1"},
        )
        assert reply.status_code == 500
        assert stripe_key not in reply.get_data(as_text=True)
        sentry_sdk.flush()
    finally:
        sentry_sdk.init()  # no DSN: off again for the rest of the suite
        with instance.app_context():
            db.session.remove()
            db.engine.dispose()
    assert CaptureTransport.captured, "the error reached the transport"
    event = CaptureTransport.captured[0]
    assert event["tags"]["request_id"] == "rid-sentry-1"
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    dumped = json.dumps(event)
    for secret in (stripe_key, webhook_secret, token.split()[1]):
        assert secret not in dumped
    assert "[Filtered]" in dumped
