"""The full user story through the SDK and the sandbox: checkout, pay, webhooks, read,
cancel at period end, resume, cancel now; monthly and yearly periods; the portal."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
from flask.testing import FlaskClient
from support import FRONTEND, Billing, auth_headers, pay_hosted_checkout, subscribe

DAY_MS = 86_400_000


def test_new_user_checkout_stripe_calls_and_returning_user_checks_stripe_first(
    client: FlaskClient, billing: Billing
) -> None:
    headers = auth_headers("user-new", "new@example.com")
    before = len(billing.stripe_calls())
    first = client.post("/api/create-checkout-session", json={"plan": "monthly"}, headers=headers)
    assert first.status_code == 200, first.get_json()
    calls = billing.stripe_calls()[before:]
    customer_id = billing.gateway.client.v1.customers.list({"email": "new@example.com"}).data[0].id
    assert [(c["method"], c["path"]) for c in calls] == [
        ("POST", "/v1/customers"),  # the user id only, under a key over exactly that
        ("POST", f"/v1/customers/{customer_id}"),  # the email apart: it may change
        ("POST", "/v1/checkout/sessions"),
    ]
    session = first.get_json()["session"]
    assert session["id"].startswith("cs_") and session["status"] == "open"
    assert session["url"].startswith(billing.sandbox.url)

    before = len(billing.stripe_calls())
    again = client.post("/api/create-checkout-session", json={"plan": "yearly"}, headers=headers)
    assert again.status_code == 200
    calls = billing.stripe_calls()[before:]
    # One live subscription per user: Stripe is asked first, then the other tab's open session
    # is expired so only the new one can be paid.
    assert [(c["method"], c["path"]) for c in calls] == [
        ("GET", "/v1/subscriptions"),
        ("GET", "/v1/checkout/sessions"),
        ("POST", f"/v1/checkout/sessions/{session['id']}/expire"),
        ("POST", "/v1/checkout/sessions"),
    ]
    # The customer was stored once, with our user id on it, not looked up by email.
    customer = billing.gateway.client.v1.customers.list({"email": "new@example.com"})
    assert len(customer.data) == 1
    assert customer.data[0].metadata["userId"] == "user-new"


def test_purchase_to_cancellation(client: FlaskClient, billing: Billing) -> None:
    user = "user-story"
    headers = auth_headers(user)
    created = client.post(
        "/api/create-checkout-session",
        json={
            "priceId": billing.monthly,
            "successUrl": f"{FRONTEND}/done?sid={{CHECKOUT_SESSION_ID}}",
            "cancelUrl": f"{FRONTEND}/pricing",
        },
        headers=headers,
    )
    assert created.status_code == 200, created.get_json()
    session_id = created.get_json()["session"]["id"]

    paid = pay_hosted_checkout(created.get_json()["session"]["url"])
    assert paid.status_code == 303
    redirect = urlsplit(paid.headers["Location"])
    assert f"{redirect.scheme}://{redirect.netloc}" == FRONTEND
    assert parse_qs(redirect.query)["sid"] == [session_id]
    billing.wait_for_webhooks()

    # Read from our database: no Stripe call.
    before = len(billing.stripe_calls())
    reply = client.get(f"/api/subscription/{user}", headers=headers)
    assert len(billing.stripe_calls()) == before
    sub = reply.get_json()["subscription"]
    assert sub["status"] == "active" and sub["tier"] == "pro"
    assert sub["priceId"] == billing.monthly and sub["interval"] == "month"
    assert sub["cancelAtPeriodEnd"] is False

    stripe_sub = billing.gateway.retrieve_subscription(sub["id"])
    item = stripe_sub["items"]["data"][0]
    assert sub["currentPeriodStart"] == item["current_period_start"] * 1000
    assert sub["currentPeriodEnd"] == item["current_period_end"] * 1000
    assert 28 * DAY_MS <= sub["currentPeriodEnd"] - sub["currentPeriodStart"] <= 31 * DAY_MS
    assert sub["customerId"] == stripe_sub["customer"]

    retrieved = client.post(
        "/api/retrieve-checkout-session", json={"sessionId": session_id}, headers=headers
    )
    assert retrieved.status_code == 200
    assert retrieved.get_json()["session"] == {
        "id": session_id,
        "status": "complete",
        "customerId": stripe_sub["customer"],
        "subscriptionId": sub["id"],
        "paymentStatus": "paid",
    }

    me = client.get("/api/me", headers=headers).get_json()
    assert me["user"]["tier"] == "pro" and me["user"]["status"] == "active"

    # A second purchase while subscribed points at the portal instead.
    conflict = client.post("/api/create-checkout-session", json={"plan": "yearly"}, headers=headers)
    assert conflict.status_code == 409
    assert conflict.get_json()["error"]["code"] == "subscription_exists"

    at_end = client.post("/api/cancel-subscription", json={}, headers=headers)
    assert at_end.status_code == 200
    body = at_end.get_json()["subscription"]
    assert body["cancelAtPeriodEnd"] is True and body["status"] == "active"
    assert body["currentPeriodEnd"] == sub["currentPeriodEnd"]
    billing.wait_for_webhooks()
    still = client.get(f"/api/subscription/{user}", headers=headers).get_json()["subscription"]
    assert still["cancelAtPeriodEnd"] is True and still["tier"] == "pro"
    assert billing.gateway.retrieve_subscription(sub["id"])["cancel_at_period_end"] is True

    resumed = client.post(
        "/api/resume-subscription", json={"subscriptionId": sub["id"]}, headers=headers
    )
    assert resumed.status_code == 200
    assert resumed.get_json()["subscription"]["cancelAtPeriodEnd"] is False
    billing.wait_for_webhooks()
    assert billing.gateway.retrieve_subscription(sub["id"])["cancel_at_period_end"] is False

    now = client.post("/api/cancel-subscription", json={"immediately": True}, headers=headers)
    assert now.status_code == 200
    assert now.get_json()["subscription"]["status"] == "canceled"
    billing.wait_for_webhooks()
    final = client.get(f"/api/subscription/{user}", headers=headers).get_json()["subscription"]
    assert final["status"] == "canceled" and final["tier"] == "free"
    me = client.get("/api/me", headers=headers).get_json()
    assert me["user"]["tier"] == "free"

    # Ended subscriptions can't be canceled again, and a new purchase is allowed.
    again = client.post(
        "/api/cancel-subscription", json={"subscriptionId": sub["id"]}, headers=headers
    )
    assert again.status_code == 409
    fresh = client.post("/api/create-checkout-session", json={"plan": "monthly"}, headers=headers)
    assert fresh.status_code == 200


def test_yearly_plan_gets_a_year_long_period(client: FlaskClient, billing: Billing) -> None:
    subscribe(client, billing, "user-yearly", plan="yearly")
    sub = client.get(
        "/api/subscription/user-yearly", headers=auth_headers("user-yearly")
    ).get_json()["subscription"]
    assert sub["interval"] == "year" and sub["priceId"] == billing.yearly
    assert 365 * DAY_MS <= sub["currentPeriodEnd"] - sub["currentPeriodStart"] <= 366 * DAY_MS


def test_redirect_alone_fulfils_when_webhooks_are_late(
    client: FlaskClient, billing: Billing
) -> None:
    """The success page calls retrieve-checkout-session; the user is pro even before webhooks."""
    billing.sandbox.configure(delivery_delay=2.0)
    headers = auth_headers("user-redirect")
    session = client.post(
        "/api/create-checkout-session", json={"plan": "monthly"}, headers=headers
    ).get_json()["session"]
    assert pay_hosted_checkout(session["url"]).status_code == 303
    retrieved = client.post(
        "/api/retrieve-checkout-session", json={"sessionId": session["id"]}, headers=headers
    )
    assert retrieved.status_code == 200
    me = client.get("/api/me", headers=headers).get_json()
    assert me["user"]["tier"] == "pro"
    assert me["subscription"]["status"] == "active"
    billing.wait_for_webhooks()
    me = client.get("/api/me", headers=headers).get_json()
    assert me["subscription"]["status"] == "active" and me["user"]["tier"] == "pro"


def test_refresh_rereads_stripe(client: FlaskClient, billing: Billing) -> None:
    subscribe(client, billing, "user-refresh")
    headers = auth_headers("user-refresh")
    sub = client.get("/api/subscription/user-refresh", headers=headers).get_json()["subscription"]
    before = len(billing.stripe_calls())
    refreshed = client.get("/api/subscription/user-refresh?refresh=true", headers=headers)
    assert refreshed.status_code == 200
    assert len(billing.stripe_calls()) > before
    assert refreshed.get_json()["subscription"] == sub


def test_portal_session_is_for_the_callers_customer(client: FlaskClient, billing: Billing) -> None:
    subscribe(client, billing, "user-portal")
    headers = auth_headers("user-portal")
    me = client.get("/api/me", headers=headers).get_json()
    reply = client.post(
        "/api/create-portal-session", json={"returnUrl": f"{FRONTEND}/account"}, headers=headers
    )
    assert reply.status_code == 200
    url = reply.get_json()["url"]
    page = requests.get(url, timeout=10)
    assert page.status_code == 200 and me["subscription"]["id"] in page.text
    created = [c for c in billing.stripe_calls("POST", "/v1/billing_portal/sessions")]
    assert created[-1]["params"]["customer"] == me["user"]["stripeCustomerId"]

    # Someone without a customer gets nothing; someone naming another customer gets a 404.
    stranger = client.post("/api/create-portal-session", json={}, headers=auth_headers("stranger"))
    assert stranger.status_code == 404
    foreign = client.post(
        "/api/create-portal-session",
        json={"customerId": me["user"]["stripeCustomerId"]},
        headers=auth_headers("other-user"),
    )
    assert foreign.status_code == 404
