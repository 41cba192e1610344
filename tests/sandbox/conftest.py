"""Fixtures for the sandbox suite: one live sandbox per session (reset per
test), an SDK client pointed at it, and a webhook receiver that verifies
every delivery with ``stripe.Webhook.construct_event``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

from sandbox_helpers import API_KEY, Receiver  # noqa: E402

from stripe_sandbox import Sandbox  # noqa: E402


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    sb = Sandbox()
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def sb(sandbox_server: Sandbox) -> Iterator[Sandbox]:
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.wait_for_webhooks(2.0)


@pytest.fixture
def client(sb: Sandbox) -> stripe.StripeClient:
    assert sb.url
    return stripe.StripeClient(API_KEY, base_addresses={"api": sb.url})


@pytest.fixture
def receiver(receiver_server: Receiver) -> Receiver:
    receiver_server.clear()
    return receiver_server


@pytest.fixture
def hook(client: stripe.StripeClient, receiver: Receiver) -> Receiver:
    """A webhook endpoint for all events, pointing at the receiver."""
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["*"]}
    )
    assert endpoint.secret and endpoint.secret.startswith("whsec_")
    receiver.secret = endpoint.secret
    return receiver


@pytest.fixture
def catalog(client: stripe.StripeClient) -> dict[str, Any]:
    """A product with monthly and yearly prices and a one-time price."""
    product = client.v1.products.create(params={"name": "Creator Pro"})
    monthly = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 1900,
            "recurring": {"interval": "month"},
            "lookup_key": "pro_monthly",
            "nickname": "Monthly",
        }
    )
    yearly = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 19000,
            "recurring": {"interval": "year"},
            "lookup_key": "pro_yearly",
            "nickname": "Yearly",
        }
    )
    once = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 500}
    )
    return {"product": product, "monthly": monthly, "yearly": yearly, "once": once}
