"""Wire protocol: auth, idempotency, pagination, expand, errors, request log."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests
import stripe
from sandbox_helpers import API_KEY, create_session, pay

from stripe_sandbox import Sandbox


def raw(
    sb: Sandbox, method: str, path: str, key: str | None = API_KEY, **kwargs: Any
) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return requests.request(method, f"{sb.url}{path}", headers=headers, timeout=10, **kwargs)


def test_auth(sb: Sandbox) -> None:
    missing = raw(sb, "GET", "/v1/customers", key=None)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "did not provide an API key" in missing.json()["error"]["message"]
    for bad in ("sk_live_abc", "pk_test_abc", "garbage"):
        response = raw(sb, "GET", "/v1/customers", key=bad)
        assert (
            response.status_code == 401 and "Invalid API Key" in response.json()["error"]["message"]
        )
    basic = base64.b64encode(f"{API_KEY}:".encode()).decode()
    ok = requests.get(
        f"{sb.url}/v1/customers", headers={"Authorization": f"Basic {basic}"}, timeout=10
    )
    assert ok.status_code == 200 and ok.json()["object"] == "list"
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_live_nope", base_addresses={"api": sb.url}).v1.customers.list()


def test_stripe_version_echo_and_headers(sb: Sandbox) -> None:
    response = raw(sb, "GET", "/v1/customers", headers={"Stripe-Version": "2024-06-20"})
    assert response.headers["Stripe-Version"] == "2024-06-20"
    assert response.headers["Request-Id"].startswith("req_")
    default = raw(sb, "GET", "/v1/customers")
    assert default.headers["Stripe-Version"] == "2026-10-28.endive"


def test_nested_form_bodies_like_curl(sb: Sandbox) -> None:
    product = raw(sb, "POST", "/v1/products", data={"name": "Curl", "metadata[plan]": "pro"})
    assert product.status_code == 200, product.text
    price = raw(
        sb,
        "POST",
        "/v1/prices",
        data={
            "product": product.json()["id"],
            "currency": "usd",
            "unit_amount": "700",
            "recurring[interval]": "month",
            "recurring[interval_count]": "3",
        },
    ).json()
    assert price["recurring"]["interval_count"] == 3 and price["unit_amount"] == 700
    session = raw(
        sb,
        "POST",
        "/v1/checkout/sessions",
        data=[
            ("mode", "subscription"),
            ("line_items[0][price]", price["id"]),
            ("line_items[0][quantity]", "2"),
            ("success_url", "https://x.example/ok"),
            ("metadata[userId]", "42"),
            ("subscription_data[metadata][userId]", "42"),
            ("expand[]", "line_items"),
        ],
    )
    assert session.status_code == 200, session.text
    body = session.json()
    assert body["metadata"] == {"userId": "42"} and body["amount_total"] == 1400
    assert body["line_items"]["data"][0]["quantity"] == 2
    listed = raw(
        sb, "GET", "/v1/prices", params={"recurring[interval]": "month", "expand[]": "data.product"}
    ).json()
    assert listed["data"][0]["product"]["name"] == "Curl"


def test_idempotency(client: stripe.StripeClient, sb: Sandbox) -> None:
    first = raw(
        sb,
        "POST",
        "/v1/customers",
        data={"email": "a@example.com"},
        headers={"Idempotency-Key": "key-1"},
    )
    again = raw(
        sb,
        "POST",
        "/v1/customers",
        data={"email": "a@example.com"},
        headers={"Idempotency-Key": "key-1"},
    )
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(client.v1.customers.list().data) == 1
    conflict = raw(
        sb,
        "POST",
        "/v1/customers",
        data={"email": "b@example.com"},
        headers={"Idempotency-Key": "key-1"},
    )
    assert conflict.status_code == 400
    assert conflict.json()["error"]["type"] == "idempotency_error"

    sdk_first = client.v1.customers.create(
        params={"email": "c@example.com"}, options={"idempotency_key": "key-2"}
    )
    sdk_again = client.v1.customers.create(
        params={"email": "c@example.com"}, options={"idempotency_key": "key-2"}
    )
    assert sdk_first.id == sdk_again.id
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(
            params={"email": "d@example.com"}, options={"idempotency_key": "key-2"}
        )


def test_pagination(client: stripe.StripeClient) -> None:
    ids = [client.v1.customers.create(params={"email": f"p{i}@example.com"}).id for i in range(25)]
    newest_first = list(reversed(ids))
    page = client.v1.customers.list(params={"limit": 10})
    assert page.object == "list" and page.url == "/v1/customers" and page.has_more is True
    assert [c.id for c in page.data] == newest_first[:10]
    page2 = client.v1.customers.list(params={"limit": 10, "starting_after": page.data[-1].id})
    assert [c.id for c in page2.data] == newest_first[10:20] and page2.has_more is True
    page3 = client.v1.customers.list(params={"limit": 10, "starting_after": page2.data[-1].id})
    assert [c.id for c in page3.data] == newest_first[20:] and page3.has_more is False
    back = client.v1.customers.list(params={"limit": 5, "ending_before": page2.data[0].id})
    assert [c.id for c in back.data] == newest_first[5:10] and back.has_more is True
    assert [
        c.id for c in client.v1.customers.list(params={"limit": 3}).auto_paging_iter()
    ] == newest_first
    assert len(client.v1.customers.list(params={"email": "p3@example.com"}).data) == 1


def test_expand(client: stripe.StripeClient, catalog: dict[str, Any]) -> None:
    customer = client.v1.customers.create(params={"email": "e@example.com"})
    create_session(client, catalog["monthly"].id, customer=customer.id)
    sessions = client.v1.checkout.sessions.list(params={"expand": ["data.customer"]})
    assert sessions.data[0].customer.email == "e@example.com"
    prices = client.v1.prices.list(
        params={"lookup_keys": ["pro_monthly"], "expand": ["data.product"]}
    )
    assert [p.id for p in prices.data] == [catalog["monthly"].id]
    assert prices.data[0].product.name == "Creator Pro"
    session = create_session(client, catalog["monthly"].id, customer=customer.id)
    assert pay(session.url, "4242424242424242").status_code == 303
    done = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["subscription.latest_invoice", "customer"]}
    )
    assert done.subscription.latest_invoice.status == "paid"
    sub = client.v1.subscriptions.retrieve(
        done.subscription.id,
        params={"expand": ["items.data.price.product", "customer", "default_payment_method"]},
    )
    assert sub["items"].data[0].price.product.name == "Creator Pro"
    assert sub.customer.email == "e@example.com"
    assert sub.default_payment_method.card.last4 == "4242"
    listed = client.v1.subscriptions.list(params={"expand": ["data.latest_invoice"]})
    assert listed.data[0].latest_invoice.object == "invoice"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.retrieve(customer.id, params={"expand": ["email"]})
    assert "cannot be expanded" in str(err.value)


def error_of(call: Any) -> stripe.StripeError:
    with pytest.raises(stripe.StripeError) as info:
        call()
    return info.value


def test_error_cases(client: stripe.StripeClient, sb: Sandbox, catalog: dict[str, Any]) -> None:
    unknown = error_of(lambda: client.v1.customers.create(params={"emale": "x@example.com"}))
    assert unknown.http_status == 400 and unknown.code == "parameter_unknown"
    assert unknown.param == "emale" and "emale" in unknown.user_message

    nested = error_of(
        lambda: client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "success_url": "https://x.example",
                "line_items": [{"price": catalog["monthly"].id, "quantity": 1, "colour": "red"}],
            }
        )
    )
    assert nested.code == "parameter_unknown" and nested.param == "line_items[0][colour]"

    missing = error_of(
        lambda: client.v1.checkout.sessions.create(params={"success_url": "https://x.example"})
    )
    assert missing.http_status == 400 and missing.code == "parameter_missing"
    assert missing.param == "mode"
    missing_qty = error_of(
        lambda: client.v1.checkout.sessions.create(
            params={"mode": "subscription", "line_items": [{"price": catalog["monthly"].id}]}
        )
    )
    assert missing_qty.code == "parameter_missing"
    assert missing_qty.param == "line_items[0][quantity]"

    not_int = error_of(
        lambda: client.v1.prices.create(
            params={"product": catalog["product"].id, "currency": "usd", "unit_amount": "lots"}
        )
    )
    assert not_int.code == "parameter_invalid_integer" and not_int.param == "unit_amount"
    bad_limit = error_of(lambda: client.v1.customers.list(params={"limit": 1000}))
    assert bad_limit.code == "parameter_invalid_integer" and bad_limit.param == "limit"
    empty = error_of(lambda: client.v1.products.create(params={"name": ""}))
    assert empty.code == "parameter_invalid_empty" and empty.param == "name"
    enum = error_of(lambda: client.v1.checkout.sessions.create(params={"mode": "rental"}))
    assert enum.http_status == 400 and enum.code == "parameter_invalid_enum"
    assert enum.param == "mode" and "payment" in enum.user_message
    boolean = error_of(lambda: client.v1.prices.list(params={"active": "maybe"}))
    assert boolean.code == "parameter_invalid_boolean"

    missing_obj = error_of(lambda: client.v1.customers.retrieve("cus_doesnotexist"))
    assert isinstance(missing_obj, stripe.InvalidRequestError)
    assert missing_obj.http_status == 404 and missing_obj.code == "resource_missing"
    assert "cus_doesnotexist" in missing_obj.user_message
    bad_ref = error_of(
        lambda: client.v1.checkout.sessions.create(
            params={"mode": "subscription", "line_items": [{"price": "price_nope", "quantity": 1}]}
        )
    )
    assert bad_ref.http_status == 404 and bad_ref.param == "line_items[0][price]"

    one_time = error_of(
        lambda: client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "line_items": [{"price": catalog["once"].id, "quantity": 1}],
            }
        )
    )
    assert one_time.http_status == 400 and "recurring" in one_time.user_message
    both = error_of(
        lambda: client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": "cus_x",
                "customer_email": "a@example.com",
                "line_items": [{"price": catalog["monthly"].id, "quantity": 1}],
            }
        )
    )
    assert both.http_status == 400

    session = create_session(client, catalog["monthly"].id)
    client.v1.checkout.sessions.expire(session.id)
    twice = error_of(lambda: client.v1.checkout.sessions.expire(session.id))
    assert twice.http_status == 400 and "expired" in twice.user_message

    unknown_url = raw(sb, "GET", "/v1/unicorns")
    assert unknown_url.status_code == 404
    assert "Unrecognized request URL" in unknown_url.json()["error"]["message"]
    weird = raw(sb, "POST", "/v1/customers", data={"metadata": "[[["})
    assert weird.status_code == 400 and weird.json()["error"]["param"] == "metadata"
    assert raw(sb, "POST", "/v1/customers", data={"address[line1][x]": "1"}).status_code == 400


def test_request_log(client: stripe.StripeClient, sb: Sandbox) -> None:
    client.v1.customers.create(params={"email": "log@example.com", "metadata": {"a": "1"}})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve("cus_missing")
    log = sb.requests
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("POST", "/v1/customers", 200),
        ("GET", "/v1/customers/cus_missing", 404),
    ]
    assert log[0]["params"] == {"email": "log@example.com", "metadata": {"a": "1"}}
    assert log[0]["idempotency_key"]
    over_http = requests.get(f"{sb.url}/_sandbox/requests", timeout=10).json()["data"]
    assert len(over_http) == 2
    assert requests.delete(f"{sb.url}/_sandbox/requests", timeout=10).status_code == 200
    assert sb.requests == []


def test_control_endpoints(client: stripe.StripeClient, sb: Sandbox) -> None:
    config = requests.post(
        f"{sb.url}/_sandbox/config", json={"duplicate_deliveries": True}, timeout=10
    ).json()
    assert config["duplicate_deliveries"] is True
    assert sb.config.duplicate_deliveries is True
    assert (
        requests.post(f"{sb.url}/_sandbox/config", json={"bogus": 1}, timeout=10).status_code == 400
    )
    client.v1.customers.create()
    assert requests.post(f"{sb.url}/_sandbox/flush", timeout=10).json() == {"idle": True}
    assert requests.post(f"{sb.url}/_sandbox/reset", timeout=10).json() == {"reset": True}
    assert client.v1.customers.list().data == []
    assert (
        requests.get(f"{sb.url}/_sandbox/config", timeout=10).json()["duplicate_deliveries"]
        is False
    )
    assert requests.get(f"{sb.url}/_sandbox/deliveries", timeout=10).json()["data"] == []
