"""GET /api/plans: public, the configured plans with Stripe's prices, served from a cache that
price/product webhooks and a TTL refresh, never a Stripe call per request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from support import Billing

from app.stripe.gateway import StripeGateway


def price_reads(billing: Billing) -> int:
    return len(billing.stripe_calls("GET", "/v1/prices/"))


@contextmanager
def stripe_unreachable(app: Flask) -> Iterator[None]:
    saved = app.extensions["stripe_gateway"]
    app.extensions["stripe_gateway"] = StripeGateway(
        "sk_test_x", api_version=app.config["STRIPE_API_VERSION"], api_base="http://127.0.0.1:9"
    )
    try:
        yield
    finally:
        app.extensions["stripe_gateway"] = saved


def test_plans_are_public_with_stripes_prices(client: FlaskClient, billing: Billing) -> None:
    reply = client.get("/api/plans")
    assert reply.status_code == 200
    plans = {plan["id"]: plan for plan in reply.get_json()["plans"]}
    assert list(plans) == ["free", "pro"]
    assert plans["free"]["prices"] == [] and plans["free"]["generationsPerPeriod"] == 10
    assert plans["pro"]["generationsPerPeriod"] is None
    assert "hd_quality" in plans["pro"]["features"]
    monthly, yearly = plans["pro"]["prices"]
    assert monthly == {
        "id": billing.monthly,
        "plan": "monthly",
        "lookupKey": "pro_monthly",
        "amount": 1900,
        "currency": "usd",
        "interval": "month",
        "intervalCount": 1,
        "productName": "AI Creator Studio Pro",
        "active": True,
    }
    assert (yearly["id"], yearly["plan"], yearly["amount"], yearly["interval"]) == (
        billing.yearly,
        "yearly",
        18000,
        "year",
    )
    assert reply.get_json()["creditPack"] is None  # none configured: no "Buy credits"


def test_the_credit_pack_on_sale_is_listed_for_the_buy_button(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    pack = billing.gateway.find_price_by_lookup_key("credit_pack")  # seeded by setup_products
    assert pack is not None and not pack.get("recurring")
    app.config.update(STRIPE_CREDIT_PACK_PRICE_ID=pack["id"], CREDIT_PACK_GENERATIONS=250)
    try:
        reply = client.get("/api/plans")
    finally:
        app.config.update(STRIPE_CREDIT_PACK_PRICE_ID="", CREDIT_PACK_GENERATIONS=100)
    assert reply.status_code == 200
    assert reply.get_json()["creditPack"] == {
        "priceId": pack["id"],
        "generations": 250,
        "amount": 500,
        "currency": "usd",
    }


def test_a_credit_pack_price_missing_in_stripe_is_not_offered(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    app.config.update(STRIPE_CREDIT_PACK_PRICE_ID="price_does_not_exist")
    try:
        reply = client.get("/api/plans")
    finally:
        app.config.update(STRIPE_CREDIT_PACK_PRICE_ID="")
    assert reply.status_code == 200
    assert reply.get_json()["creditPack"] is None


def test_no_stripe_call_per_request(client: FlaskClient, billing: Billing) -> None:
    client.get("/api/plans")
    reads = price_reads(billing)
    assert reads == 2
    for _ in range(5):
        assert client.get("/api/plans").status_code == 200
    assert price_reads(billing) == reads


def test_a_product_webhook_refreshes_the_table(client: FlaskClient, billing: Billing) -> None:
    product = billing.gateway.client.v1.prices.retrieve(billing.monthly).product
    client.get("/api/plans")
    before = price_reads(billing)
    billing.gateway.client.v1.products.update(str(product), {"name": "Creator Pro"})
    billing.wait_for_webhooks()
    plans = client.get("/api/plans").get_json()["plans"]
    assert plans[1]["prices"][0]["productName"] == "Creator Pro"
    assert price_reads(billing) == before + 2
    client.get("/api/plans")
    assert price_reads(billing) == before + 2  # cached again


def test_a_price_webhook_refreshes_the_table(client: FlaskClient, billing: Billing) -> None:
    client.get("/api/plans")
    billing.gateway.client.v1.prices.update(billing.yearly, {"active": False})
    billing.wait_for_webhooks()
    yearly = client.get("/api/plans").get_json()["plans"][1]["prices"][1]
    assert yearly["id"] == billing.yearly and yearly["active"] is False


def test_the_ttl_refreshes_the_table(app: Flask, client: FlaskClient, billing: Billing) -> None:
    client.get("/api/plans")
    before = price_reads(billing)
    app.config["PLANS_CACHE_SECONDS"] = 0
    try:
        client.get("/api/plans")
    finally:
        app.config["PLANS_CACHE_SECONDS"] = 300
    assert price_reads(billing) == before + 2


@pytest.mark.slow  # a fault test: waits out Stripe's timeouts
def test_stripe_down_serves_the_last_table(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    with stripe_unreachable(app):
        first = client.get("/api/plans")
        assert first.status_code == 503 and first.headers["Retry-After"] == "5"
        assert first.get_json()["error"]["code"] == "payment_provider_unavailable"
    good = client.get("/api/plans").get_json()
    app.config["PLANS_CACHE_SECONDS"] = 0  # due for a refresh, which fails
    try:
        with stripe_unreachable(app):
            stale = client.get("/api/plans")
    finally:
        app.config["PLANS_CACHE_SECONDS"] = 300
    assert stale.status_code == 200 and stale.get_json() == good


def test_instances_share_the_cache_and_its_invalidation(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    """Two workers: one read of Stripe serves both; a webhook to one refreshes both."""
    from app_instance import serve_instance

    with serve_instance(app) as other:
        first = requests.get(f"{other.url}/api/plans", timeout=10).json()
        reads = price_reads(billing)
        assert client.get("/api/plans").get_json() == first
        assert price_reads(billing) == reads
        product = billing.gateway.client.v1.prices.retrieve(billing.monthly).product
        billing.gateway.client.v1.products.update(str(product), {"name": "Renamed"})
        billing.wait_for_webhooks()  # delivered to the suite's app, not to `other`
        renamed = requests.get(f"{other.url}/api/plans", timeout=10).json()
        assert renamed["plans"][1]["prices"][0]["productName"] == "Renamed"


def test_a_configured_price_missing_in_stripe_is_left_out(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    app.config["STRIPE_PRICE_ID_YEARLY"] = "price_does_not_exist"
    try:
        reply = client.get("/api/plans")
    finally:
        app.config["STRIPE_PRICE_ID_YEARLY"] = billing.yearly
    assert reply.status_code == 200
    assert [p["id"] for p in reply.get_json()["plans"][1]["prices"]] == [billing.monthly]
