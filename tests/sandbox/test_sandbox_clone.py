"""POST /_sandbox/clone: bulk copies of a subscription for benchmarks (`make bench` seeds
10,000 subscriptions with it for `billing sync`)."""

from __future__ import annotations

from typing import Any

import requests
import stripe
from test_sandbox_subscriptions import customer_with_card

from stripe_sandbox import Sandbox


def test_clone_makes_independent_copies_without_events(
    sb: Sandbox, client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    customer = customer_with_card(client)
    client.v1.customers.update(customer.id, params={"metadata": {"userId": "u"}})
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": catalog["monthly"].id}],
            "metadata": {"userId": "u"},
        }
    )
    events_before = len(client.v1.events.list(params={"limit": 100}).data)

    reply = requests.post(
        f"{sb.url}/_sandbox/clone", json={"subscription": sub.id, "count": 3}, timeout=10
    )

    assert reply.status_code == 200
    ids = reply.json()["data"]
    assert len(ids) == 3 and sub.id not in ids
    listed = client.v1.subscriptions.list(params={"limit": 10}).data
    assert {s.id for s in listed} == {sub.id, *ids}
    for n, clone_id in enumerate(ids, 1):
        clone = client.v1.subscriptions.retrieve(clone_id)
        assert clone.status == "active" and clone.metadata["userId"] == f"u-{n}"
        assert clone.customer != customer.id
        assert client.v1.customers.retrieve(clone.customer).metadata["userId"] == f"u-{n}"
        item = clone["items"].data[0]
        assert item.id != sub["items"].data[0].id and item.subscription == clone_id
        assert item.price.id == catalog["monthly"].id
    # a copy changes on its own
    client.v1.subscriptions.update(ids[0], params={"cancel_at_period_end": True})
    assert client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is False
    # copies emit no events of their own creation
    updated_only = client.v1.events.list(params={"limit": 100}).data
    assert len(updated_only) == events_before + 1


def test_clone_refuses_bad_input(sb: Sandbox) -> None:
    url = f"{sb.url}/_sandbox/clone"
    assert requests.post(url, json={"count": 2}, timeout=10).status_code == 400
    missing = requests.post(url, json={"subscription": "sub_missing", "count": 1}, timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"
    assert (
        requests.post(url, json={"subscription": "x", "count": "many"}, timeout=10).status_code
        == 400
    )
    zero = requests.post(url, json={"subscription": "x", "count": 0}, timeout=10)
    assert zero.status_code == 400
