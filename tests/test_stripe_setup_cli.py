"""`flask billing setup-products | setup-webhook | check-stripe | check --stripe`, prices by
lookup key, and `replay` of unknown ids and with --force."""

from __future__ import annotations

import time

from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from support import Billing, auth_headers, post_webhook

from app import create_app
from app.billing.webhooks.handlers import HANDLED_EVENT_TYPES
from app.extensions import db
from app.models import WebhookEvent
from stripe_sandbox import Sandbox


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["billing", *args])


def test_setup_products_twice_creates_one_product_and_its_prices(
    app: Flask, billing: Billing, sandbox: Sandbox
) -> None:
    sandbox.reset()  # an empty Stripe account
    first = run(app, "setup-products")
    assert first.exit_code == 0, first.output
    second = run(app, "setup-products")
    assert second.exit_code == 0, second.output

    products = billing.gateway.client.v1.products.list({"limit": 100}).data
    prices = billing.gateway.client.v1.prices.list({"limit": 100}).data
    assert len(products) == 1
    shapes = [
        (p.unit_amount, p.recurring.interval if p.recurring else None, p.lookup_key) for p in prices
    ]
    assert sorted(shapes, key=lambda shape: shape[0]) == [
        (500, None, "credit_pack"),  # one-time: the credit pack
        (1900, "month", "pro_monthly"),
        (18000, "year", "pro_yearly"),
    ]
    monthly = next(p.id for p in prices if p.lookup_key == "pro_monthly")
    yearly = next(p.id for p in prices if p.lookup_key == "pro_yearly")
    pack = next(p.id for p in prices if p.lookup_key == "credit_pack")
    for output in (first.stdout, second.stdout):
        assert f"STRIPE_PRICE_ID_MONTHLY={monthly}" in output.splitlines()
        assert f"STRIPE_PRICE_ID_YEARLY={yearly}" in output.splitlines()
        assert f"STRIPE_CREDIT_PACK_PRICE_ID={pack}" in output.splitlines()
    assert "created product" in first.stderr and "created product" not in second.stderr
    assert second.stderr.count("kept price") == 3


def test_setup_products_replaces_a_price_with_the_wrong_amount(
    app: Flask, billing: Billing, sandbox: Sandbox
) -> None:
    sandbox.reset()
    product = billing.gateway.create_product(name="Pro", description="d", product_id="")
    wrong = billing.gateway.create_recurring_price(
        product_id=product["id"], unit_amount=2500, interval="month", lookup_key="pro_monthly"
    )
    result = run(app, "setup-products")
    assert result.exit_code == 0, result.output
    assert "replaced price" in result.stderr
    found = billing.gateway.find_price_by_lookup_key("pro_monthly")
    assert found is not None and found["id"] != wrong["id"] and found["unit_amount"] == 1900
    assert found["product"] == product["id"]  # the existing product is kept


def test_prices_may_be_configured_by_lookup_key(app: Flask, billing: Billing) -> None:
    instance = create_app(
        {
            "APP_ENV": "testing",
            "TESTING": True,
            "DATABASE_URL": app.config["DATABASE_URL"],
            "STRIPE_SECRET_KEY": app.config["STRIPE_SECRET_KEY"],
            "STRIPE_API_BASE": billing.sandbox.url,
            "STRIPE_PRICE_LOOKUP_KEY_MONTHLY": "pro_monthly",
            "STRIPE_PRICE_LOOKUP_KEY_YEARLY": "pro_yearly",
            "AUTH_JWT_SECRET": app.config["AUTH_JWT_SECRET"],
            "LOG_LEVEL": "CRITICAL",
        }
    )
    # Read on first need, not at boot (issue 18 finding 2: booting never waits on Stripe).
    assert instance.config["STRIPE_PRICE_ID_MONTHLY"] == ""
    created = instance.test_client().post(
        "/api/create-checkout-session", json={"plan": "yearly"}, headers=auth_headers("lk-user")
    )
    assert created.status_code == 200, created.get_json()
    assert instance.config["STRIPE_PRICE_ID_MONTHLY"] == billing.monthly
    assert instance.config["STRIPE_PRICE_ID_YEARLY"] == billing.yearly
    with instance.app_context():
        db.session.remove()
        db.engine.dispose()


def test_check_stripe_reports_endpoint_problems_until_setup_webhook_fixes_them(
    app: Flask, billing: Billing
) -> None:
    app.config["PUBLIC_URL"] = "https://billing.example.com"
    try:
        missing = run(app, "check-stripe")
        assert missing.exit_code == 1
        assert "no webhook endpoint for https://billing.example.com/api/webhooks/stripe" in (
            missing.stderr
        )
        # An endpoint in another api_version, missing an event: both named.
        billing.gateway.create_webhook_endpoint(
            url="https://billing.example.com/api/webhooks/stripe",
            enabled_events=[e for e in HANDLED_EVENT_TYPES if e != "invoice.paid"],
            api_version="2024-06-20",
        )
        wrong = run(app, "check", "--stripe")
        assert wrong.exit_code == 1
        assert "lacks events: invoice.paid" in wrong.stderr
        assert "renders api_version '2024-06-20'" in wrong.stderr
        assert run(app, "check-stripe", "--warn-only").exit_code == 0  # start-up: warn only

        assert run(app, "setup-webhook").exit_code == 1  # exists: its secret can't be read
        replaced = run(app, "setup-webhook", "--replace")
        assert replaced.exit_code == 0, replaced.output
        assert replaced.stdout.startswith("STRIPE_WEBHOOK_SECRET=whsec_")
        fixed = run(app, "check", "--stripe")
        assert fixed.exit_code == 0, fixed.output
        assert "ok: Stripe key, prices and webhook endpoint as configured" in fixed.stdout
    finally:
        app.config["PUBLIC_URL"] = "http://127.0.0.1:3001"


def test_check_stripe_names_a_bad_key_and_a_missing_price(app: Flask, billing: Billing) -> None:
    saved = app.config["STRIPE_PRICE_ID_YEARLY"]
    app.config["STRIPE_PRICE_ID_YEARLY"] = "price_gone"
    try:
        result = run(app, "check-stripe")
        assert result.exit_code == 1
        assert "STRIPE_PRICE_ID_YEARLY=price_gone" in result.stderr
    finally:
        app.config["STRIPE_PRICE_ID_YEARLY"] = saved
    bad_key = create_app(
        {
            "APP_ENV": "testing",
            "DATABASE_URL": app.config["DATABASE_URL"],
            "STRIPE_SECRET_KEY": "sk_test_wrong",
            "STRIPE_API_BASE": "http://127.0.0.1:9",  # nothing listens: unreachable
            "STRIPE_MAX_NETWORK_RETRIES": 0,
            "LOG_LEVEL": "CRITICAL",
        }
    )
    result = bad_key.test_cli_runner().invoke(args=["billing", "check-stripe"])
    assert result.exit_code == 1
    assert "the Stripe key does not work" in result.stderr


def test_replay_of_an_unknown_id_says_so(app: Flask, billing: Billing) -> None:
    result = run(app, "replay", "evt_nope")
    assert result.exit_code == 1
    assert "evt_nope: no such event stored" in result.stderr
    assert "0 of 0" not in result.output


def test_replay_force_applies_a_processed_event_again(
    app: Flask, billing: Billing, client: FlaskClient
) -> None:
    event = {
        "id": "evt_force_1",
        "object": "event",
        "type": "invoice.payment_failed",
        "created": int(time.time()),
        "data": {"object": {"id": "in_force", "object": "invoice", "customer": None}},
    }
    assert post_webhook(client, event, billing.webhook_secret).get_json()["status"] == "recorded"
    plain = run(app, "replay", "evt_force_1")
    assert plain.exit_code == 0
    assert "already processed, not replayed (--force replays it)" in plain.stdout
    assert run(app, "replay", "--force").exit_code == 2  # needs ids, --since or --type
    forced = run(app, "replay", "--force", "evt_force_1")
    assert forced.exit_code == 0, forced.output
    assert "evt_force_1 invoice.payment_failed: applied" in forced.stdout
    assert "replayed 1 of 1 event(s)" in forced.stdout
    with app.app_context():
        row = db.session.execute(
            select(WebhookEvent).where(WebhookEvent.id == "evt_force_1")
        ).scalar_one()
        assert row.processed and row.attempts == 2
        db.session.rollback()
