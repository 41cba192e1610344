"""Billing portal: cancel at period end, resume, switch price, return link."""

from __future__ import annotations

import re
from typing import Any

import requests
import stripe
from sandbox_helpers import create_session, pay

from stripe_sandbox import Sandbox


def subscribe(client: stripe.StripeClient, price_id: str) -> Any:
    session = create_session(client, price_id)
    assert pay(session.url, "4242424242424242").status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id)
    return client.v1.subscriptions.retrieve(done.subscription)


def portal_post(url: str, **form: str) -> requests.Response:
    return requests.post(url, data=form, allow_redirects=False, timeout=10)


def test_portal_cancel_resume_switch(
    client: stripe.StripeClient, sb: Sandbox, hook: Any, catalog: dict[str, Any]
) -> None:
    sub = subscribe(client, catalog["monthly"].id)
    portal = client.v1.billing_portal.sessions.create(
        params={"customer": sub.customer, "return_url": "https://app.example/account"}
    )
    assert portal.url.startswith(sb.url + "/portal/") and portal.customer == sub.customer
    assert portal.return_url == "https://app.example/account"

    page = requests.get(portal.url, timeout=10)
    assert page.status_code == 200
    assert sub.id in page.text and f'id="cancel-{sub.id}"' in page.text
    assert 'id="return" href="https://app.example/account"' in page.text
    assert catalog["yearly"].id in page.text  # offered as a switch target

    # cancel at period end
    response = portal_post(portal.url, action="cancel", subscription=sub.id)
    assert response.status_code == 303 and response.headers["Location"].endswith(
        f"/portal/{portal.id}"
    )
    canceled = client.v1.subscriptions.retrieve(sub.id)
    period_end = sub["items"].data[0].current_period_end
    assert canceled.cancel_at_period_end is True and canceled.status == "active"
    assert canceled.cancel_at == period_end
    assert canceled.cancellation_details.reason == "cancellation_requested"
    event = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert event.data.object.cancel_at_period_end is True
    assert event.data.previous_attributes.cancel_at_period_end is False
    assert f'id="resume-{sub.id}"' in requests.get(portal.url, timeout=10).text

    # resume (undo the pending cancellation)
    assert portal_post(portal.url, action="resume", subscription=sub.id).status_code == 303
    resumed = client.v1.subscriptions.retrieve(sub.id)
    assert resumed.cancel_at_period_end is False and resumed.cancel_at is None

    # switch to the yearly price of the same product
    assert (
        portal_post(
            portal.url, action="switch", subscription=sub.id, price=catalog["yearly"].id
        ).status_code
        == 303
    )
    switched = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    item = switched["items"].data[0]
    assert item.price.id == catalog["yearly"].id and item.id == sub["items"].data[0].id
    assert item.current_period_end - item.current_period_start >= 365 * 86400
    invoice = switched.latest_invoice
    assert invoice.billing_reason == "subscription_update" and invoice.status == "paid"
    amounts = sorted(line.amount for line in invoice.lines.data)
    assert amounts[0] < 0 and amounts[-1] == 19000  # unused monthly time credited
    last = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert last.data.previous_attributes["items"].data[0].price.id == catalog["monthly"].id

    # a price of another product is refused
    other = client.v1.prices.create(
        params={
            "product_data": {"name": "Other"},
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
        }
    )
    refused = portal_post(portal.url, action="switch", subscription=sub.id, price=other.id)
    assert refused.status_code == 400

    assert sb.wait_for_webhooks(5)
    assert hook.types().count("customer.subscription.updated") >= 4


def test_portal_same_interval_switch_creates_prorations(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    premium = client.v1.prices.create(
        params={
            "product": catalog["product"].id,
            "currency": "usd",
            "unit_amount": 2900,
            "recurring": {"interval": "month"},
        }
    )
    sub = subscribe(client, catalog["monthly"].id)
    portal = client.v1.billing_portal.sessions.create(params={"customer": sub.customer})
    assert (
        portal_post(portal.url, action="switch", subscription=sub.id, price=premium.id).status_code
        == 303
    )
    switched = client.v1.subscriptions.retrieve(sub.id)
    assert switched["items"].data[0].price.id == premium.id
    assert switched.latest_invoice == sub.latest_invoice  # prorations wait for renewal


def test_portal_flow_redirects_after_completion(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    sub = subscribe(client, catalog["monthly"].id)
    portal = client.v1.billing_portal.sessions.create(
        params={
            "customer": sub.customer,
            "return_url": "https://app.example/account",
            "flow_data": {
                "type": "subscription_cancel",
                "subscription_cancel": {"subscription": sub.id},
                "after_completion": {
                    "type": "redirect",
                    "redirect": {"return_url": "https://app.example/canceled"},
                },
            },
        }
    )
    assert portal.flow.type == "subscription_cancel"
    response = portal_post(portal.url, action="cancel")
    assert response.status_code == 303
    assert response.headers["Location"] == "https://app.example/canceled"
    assert client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is True
    assert re.search(r"bpc_\w+", portal.configuration)
