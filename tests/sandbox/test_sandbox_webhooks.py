"""Webhook endpoints, signing, retries after failures, and the test switches."""

from __future__ import annotations

import socket
import time
from collections import Counter
from typing import Any

import pytest
import stripe
from sandbox_helpers import Receiver, create_session, pay, wait_until

from stripe_sandbox import Sandbox
from stripe_sandbox.webhooks import RETRY_SCHEDULE, sign


def make_customers(client: stripe.StripeClient, n: int) -> list[str]:
    return [client.v1.customers.create(params={"email": f"w{i}@example.com"}).id for i in range(n)]


def test_endpoint_crud_and_secret(client: stripe.StripeClient, receiver: Receiver) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={
            "url": receiver.url,
            "enabled_events": ["customer.created", "invoice.paid"],
            "description": "billing",
            "metadata": {"team": "billing"},
        }
    )
    assert endpoint.secret.startswith("whsec_") and endpoint.status == "enabled"
    fetched = client.v1.webhook_endpoints.retrieve(endpoint.id)
    assert "secret" not in fetched and fetched.enabled_events == [
        "customer.created",
        "invoice.paid",
    ]
    assert [e.id for e in client.v1.webhook_endpoints.list().data] == [endpoint.id]
    assert client.v1.webhook_endpoints.delete(endpoint.id).deleted is True
    assert client.v1.webhook_endpoints.list().data == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.webhook_endpoints.create(params={"url": "ftp://nope", "enabled_events": ["*"]})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.webhook_endpoints.create(params={"url": receiver.url})
    assert err.value.code == "parameter_missing"


def test_signature_and_filtering(
    client: stripe.StripeClient, sb: Sandbox, receiver: Receiver
) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["customer.created"]}
    )
    receiver.secret = endpoint.secret
    customer = client.v1.customers.create(params={"email": "sig@example.com"})
    client.v1.customers.update(customer.id, params={"name": "Sig"})
    assert sb.wait_for_webhooks(5)
    events = receiver.events()  # raises if any signature does not verify
    assert [e.type for e in events] == ["customer.created"]
    assert events[0].data.object.id == customer.id
    headers, body = receiver.deliveries[0]
    assert headers["Content-Type"].startswith("application/json")
    stamp = int(headers["Stripe-Signature"].split(",")[0][2:])
    assert headers["Stripe-Signature"] == sign(body.decode(), endpoint.secret, stamp)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], "whsec_x")
    event = client.v1.events.retrieve(events[0].id)
    assert event.pending_webhooks == 0
    assert sb.deliveries[0]["status"] == 200 and sb.deliveries[0]["attempt"] == 1


def test_retry_after_failing_endpoint(
    client: stripe.StripeClient, sb: Sandbox, hook: Receiver
) -> None:
    sb.configure(retry_time_scale=0.001)
    hook.fail_next = 2
    customer = client.v1.customers.create(params={"email": "retry@example.com"})
    assert sb.wait_for_webhooks(10)
    log = sb.deliveries
    assert [(d["attempt"], d["status"]) for d in log] == [(1, 500), (2, 500), (3, 200)]
    assert {d["event_id"] for d in log} == {log[0]["event_id"]}
    assert log[0]["error"] and log[2]["error"] is None
    assert [e.data.object.id for e in hook.events()] == [customer.id] * 3
    assert log[1]["delivered_at"] - log[0]["delivered_at"] >= RETRY_SCHEDULE[0] * 0.001


def test_unreachable_endpoint_is_retried(client: stripe.StripeClient, sb: Sandbox) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client.v1.webhook_endpoints.create(
        params={"url": f"http://127.0.0.1:{port}/hook", "enabled_events": ["*"]}
    )
    sb.configure(retry_time_scale=0.0005)
    client.v1.customers.create()
    assert wait_until(lambda: len(sb.deliveries) >= 3, 10)
    assert all(d["status"] is None and d["error"] for d in sb.deliveries[:3])
    assert [d["attempt"] for d in sb.deliveries[:3]] == [1, 2, 3]


def test_wait_for_webhooks_ignores_far_retries(
    client: stripe.StripeClient, sb: Sandbox, hook: Receiver
) -> None:
    hook.fail_next = 1  # the retry comes 60 s later at scale 1.0
    client.v1.customers.create()
    started = time.monotonic()
    assert sb.wait_for_webhooks(1.0) is True
    assert time.monotonic() - started < 1.0
    assert [d["status"] for d in sb.deliveries] == [500]


def test_duplicate_deliveries(client: stripe.StripeClient, sb: Sandbox, hook: Receiver) -> None:
    sb.configure(duplicate_deliveries=True)
    make_customers(client, 3)
    assert sb.wait_for_webhooks(5)
    counts = Counter(e.id for e in hook.events())
    assert len(counts) == 3 and set(counts.values()) == {2}


def test_shuffled_deliveries(
    client: stripe.StripeClient, sb: Sandbox, hook: Receiver, catalog: dict[str, Any]
) -> None:
    sb.configure(shuffle_deliveries=True)
    for _ in range(5):
        assert sb.wait_for_webhooks(10)
        with hook.lock:
            hook.deliveries.clear()
        before = {e.id for e in client.v1.events.list(params={"limit": 100}).data}
        session = create_session(client, catalog["monthly"].id)
        pay(session.url, "4242424242424242")  # one operation, a dozen events
        assert sb.wait_for_webhooks(10)
        emitted = [
            e.id
            for e in reversed(client.v1.events.list(params={"limit": 100}).data)
            if e.id not in before
        ]
        got = [e.id for e in hook.events()]
        assert sorted(got) == sorted(emitted)
        if got != emitted:
            break
    else:
        pytest.fail("deliveries of one operation were never reordered")


def test_delivery_delay(client: stripe.StripeClient, sb: Sandbox, hook: Receiver) -> None:
    sb.configure(delivery_delay=0.3)
    started = time.monotonic()
    client.v1.customers.create()
    assert hook.deliveries == []
    assert sb.wait_for_webhooks(5)
    assert len(hook.deliveries) == 1 and time.monotonic() - started >= 0.3


def test_disabled_endpoint_gets_nothing(
    client: stripe.StripeClient, sb: Sandbox, hook: Receiver
) -> None:
    endpoint = client.v1.webhook_endpoints.list().data[0]
    client.v1.webhook_endpoints.update(endpoint.id, params={"disabled": True})
    client.v1.customers.create()
    assert sb.wait_for_webhooks(5)
    assert hook.deliveries == []
