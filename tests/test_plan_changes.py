"""Plan changes with a proration preview, seats, trials and promotion codes, end to end through
the API, the SDK and the sandbox (docs/features.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support import Billing, auth_headers, pay_hosted_checkout, post_webhook, subscribe

from app.extensions import db
from app.models import Subscription

TEAM_PLANS: dict[str, Any] = {
    "plans": {
        "free": {"generationsPerPeriod": 10, "features": ["generate"]},
        "pro": {
            "prices": ["monthly", "yearly"],
            "generationsPerPeriod": 100,
            "features": ["generate", "hd_quality"],
            "minSeats": 1,
            "maxSeats": 5,
        },
    }
}


@pytest.fixture
def plans_file(app: Flask, tmp_path: Path) -> Iterator[Any]:
    """Run a test under a plans document of its own (PLANS_FILE), restored afterwards."""
    before = app.config.get("PLANS_FILE")

    def use(document: dict[str, Any]) -> None:
        path = tmp_path / f"plans-{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps(document))
        app.config["PLANS_FILE"] = str(path)

    yield use
    app.config["PLANS_FILE"] = before


def _updates(billing: Billing, subscription_id: str) -> list[dict[str, Any]]:
    return billing.stripe_calls("POST", f"/v1/subscriptions/{subscription_id}")


def test_preview_then_switch_monthly_to_yearly_charges_what_the_preview_showed(
    client: FlaskClient, billing: Billing
) -> None:
    user = "plan-switch"
    headers = auth_headers(user)
    subscribe(client, billing, user, plan="monthly")
    before = client.get("/api/me", headers=headers).get_json()["subscription"]
    assert before["interval"] == "month" and before["quantity"] == 1

    previewed = client.post(
        "/api/subscription/preview-change", json={"plan": "yearly"}, headers=headers
    )
    assert previewed.status_code == 200, previewed.get_json()
    preview = previewed.get_json()["preview"]
    yearly = billing.gateway.client.v1.prices.retrieve(billing.yearly)
    # Another interval: the cycle restarts now, the year in full less the unused month.
    assert preview["priceId"] == billing.yearly
    credits = [line for line in preview["lines"] if line["proration"]]
    assert credits and all(line["amount"] < 0 for line in credits)
    assert preview["amountDueNow"] == yearly.unit_amount + sum(c["amount"] for c in credits)
    assert 0 < preview["amountDueNow"] < yearly.unit_amount
    assert preview["nextInvoiceAmount"] == yearly.unit_amount
    # Nothing changed at Stripe or here.
    assert _updates(billing, before["id"]) == []
    assert client.get("/api/me", headers=headers).get_json()["subscription"]["interval"] == "month"

    changed = client.post(
        "/api/subscription/change",
        json={"plan": "yearly", "prorationDate": preview["prorationDate"]},
        headers=headers,
    )
    assert changed.status_code == 200, changed.get_json()
    sub = changed.get_json()["subscription"]
    assert sub["priceId"] == billing.yearly and sub["interval"] == "year"
    # /api/me shows it at once, before any webhook is applied.
    me = client.get("/api/me", headers=headers).get_json()
    assert me["subscription"]["interval"] == "year" and me["user"]["tier"] == "pro"
    stripe_sub = billing.gateway.retrieve_subscription(sub["id"])
    invoice = billing.gateway.client.v1.invoices.retrieve(stripe_sub["latest_invoice"])
    assert invoice.amount_due == preview["amountDueNow"]  # the charge matches the preview
    assert invoice.status == "paid"

    billing.wait_for_webhooks()  # the webhooks that follow agree and change nothing back
    after = client.get("/api/me", headers=headers).get_json()["subscription"]
    assert after["interval"] == "year" and after["priceId"] == billing.yearly


def test_asking_for_the_current_plan_changes_nothing_and_a_repeat_is_replayed(
    client: FlaskClient, billing: Billing
) -> None:
    user = "plan-same"
    headers = auth_headers(user)
    subscribe(client, billing, user, plan="monthly")
    sub_id = client.get("/api/me", headers=headers).get_json()["subscription"]["id"]

    same = client.post("/api/subscription/change", json={"plan": "monthly"}, headers=headers)
    assert same.status_code == 200
    assert same.get_json()["subscription"]["priceId"] == billing.monthly
    assert _updates(billing, sub_id) == []  # no change asked of Stripe

    preview = client.post(
        "/api/subscription/preview-change", json={"plan": "monthly"}, headers=headers
    ).get_json()["preview"]
    assert preview["amountDueNow"] == 0 and preview["lines"] == []
    monthly = billing.gateway.client.v1.prices.retrieve(billing.monthly)
    assert preview["nextInvoiceAmount"] == monthly.unit_amount


def test_a_double_clicked_change_sends_one_key_and_changes_once(
    client: FlaskClient, billing: Billing, app: Flask
) -> None:
    user = "plan-double"
    headers = auth_headers(user)
    subscribe(client, billing, user, plan="monthly")
    sub_id = client.get("/api/me", headers=headers).get_json()["subscription"]["id"]
    billing.sandbox.clear_requests()
    gateway = billing.gateway
    stripe_sub = gateway.retrieve_subscription(sub_id)
    item = stripe_sub["items"]["data"][0]
    with app.app_context():
        row = db.session.get(Subscription, sub_id)
        assert row is not None and row.updated_at is not None
        version = row.updated_at.isoformat()
    answers = [
        gateway.change_subscription_item(
            sub_id,
            item_id=item["id"],
            price_id=billing.yearly,
            quantity=1,
            proration_date=item["current_period_start"] + 60,
            starting_from=version,
        )
        for _ in range(2)
    ]
    assert answers[0]["latest_invoice"] == answers[1]["latest_invoice"]  # replayed, not redone
    invoices = gateway.client.v1.invoices.list({"subscription": sub_id}).data
    assert len([inv for inv in invoices if inv.billing_reason == "subscription_update"]) == 1
    billing.wait_for_webhooks()  # the change's events applied before the next test clears tables


def test_only_the_callers_own_subscription_can_be_changed(
    client: FlaskClient, billing: Billing
) -> None:
    subscribe(client, billing, "plan-owner", plan="monthly")
    owner_sub = client.get("/api/me", headers=auth_headers("plan-owner")).get_json()
    other = auth_headers("plan-other")
    for path in ("/api/subscription/preview-change", "/api/subscription/change"):
        reply = client.post(
            path,
            json={"plan": "yearly", "subscriptionId": owner_sub["subscription"]["id"]},
            headers=other,
        )
        assert reply.status_code == 404
        assert reply.get_json()["error"]["code"] == "subscription_not_found"
    nothing = client.post("/api/subscription/change", json={}, headers=other)
    assert nothing.status_code == 400
    assert nothing.get_json()["error"]["code"] == "change_required"
    stale = client.post(
        "/api/subscription/change",
        json={"plan": "yearly", "prorationDate": 1_000_000_000_000},
        headers=auth_headers("plan-owner"),
    )
    assert stale.status_code == 400
    assert stale.get_json()["error"]["code"] == "invalid_proration_date"
    assert _updates(billing, owner_sub["subscription"]["id"]) == []


def test_seats_at_checkout_and_changed_later_scale_the_generations(
    client: FlaskClient, billing: Billing, plans_file: Any
) -> None:
    plans_file(TEAM_PLANS)
    user = "plan-seats"
    headers = auth_headers(user)
    too_many = client.post(
        "/api/create-checkout-session", json={"plan": "monthly", "quantity": 6}, headers=headers
    )
    assert too_many.status_code == 400
    assert too_many.get_json()["error"]["code"] == "invalid_quantity"

    created = client.post(
        "/api/create-checkout-session", json={"plan": "monthly", "quantity": 2}, headers=headers
    )
    assert created.status_code == 200, created.get_json()
    session = billing.gateway.client.v1.checkout.sessions.retrieve(
        created.get_json()["session"]["id"], {"expand": ["line_items"]}
    )
    assert session.line_items.data[0].quantity == 2
    assert pay_hosted_checkout(created.get_json()["session"]["url"]).status_code == 303
    billing.wait_for_webhooks()
    me = client.get("/api/me", headers=headers).get_json()
    assert me["subscription"]["quantity"] == 2
    limits = client.get("/api/me/entitlements", headers=headers).get_json()
    assert limits["generationsLimit"] == 200  # 100 per seat

    monthly = billing.gateway.client.v1.prices.retrieve(billing.monthly)
    preview = client.post(
        "/api/subscription/preview-change", json={"quantity": 3}, headers=headers
    ).get_json()["preview"]
    # Same interval: nothing due now; the next invoice carries the prorations and 3 seats.
    assert preview["amountDueNow"] == 0
    assert 0 < preview["prorationAmount"] <= monthly.unit_amount
    assert preview["nextInvoiceAmount"] == 3 * monthly.unit_amount + preview["prorationAmount"]

    changed = client.post(
        "/api/subscription/change",
        json={"quantity": 3, "prorationDate": preview["prorationDate"]},
        headers=headers,
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["subscription"]["quantity"] == 3
    limits = client.get("/api/me/entitlements", headers=headers).get_json()
    assert limits["generationsLimit"] == 300
    refused = client.post("/api/subscription/change", json={"quantity": 9}, headers=headers)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "invalid_quantity"
    billing.wait_for_webhooks()
    assert client.get("/api/me", headers=headers).get_json()["subscription"]["quantity"] == 3


def test_promotion_code_from_the_api_discounts_the_checkout(
    client: FlaskClient, billing: Billing
) -> None:
    stripe = billing.gateway.client.v1
    coupon = stripe.coupons.create({"percent_off": 25, "duration": "once"})
    stripe.promotion_codes.create(
        {"promotion": {"type": "coupon", "coupon": coupon.id}, "code": "LAUNCH25"}
    )
    headers = auth_headers("plan-promo")
    before = len(billing.stripe_calls("POST", "/v1/checkout/sessions"))
    bad = client.post(
        "/api/create-checkout-session",
        json={"plan": "monthly", "promotionCode": "NOPE"},
        headers=headers,
    )
    assert bad.status_code == 400
    assert bad.get_json()["error"]["code"] == "invalid_promotion_code"
    assert len(billing.stripe_calls("POST", "/v1/checkout/sessions")) == before

    good = client.post(
        "/api/create-checkout-session",
        json={"plan": "monthly", "promotionCode": "LAUNCH25"},
        headers=headers,
    )
    assert good.status_code == 200, good.get_json()
    session = stripe.checkout.sessions.retrieve(good.get_json()["session"]["id"])
    monthly = stripe.prices.retrieve(billing.monthly)
    assert session.discounts[0].promotion_code.startswith("promo_")
    assert session.amount_total == monthly.unit_amount - round(monthly.unit_amount * 0.25)
    assert not session.allow_promotion_codes

    plain = client.post(
        "/api/create-checkout-session", json={"plan": "monthly"}, headers=auth_headers("plan-p2")
    )
    plain_session = stripe.checkout.sessions.retrieve(plain.get_json()["session"]["id"])
    assert plain_session.allow_promotion_codes is True and plain_session.discounts == []


def test_trial_without_a_card_then_the_warning_shows_in_me(
    client: FlaskClient, billing: Billing, plans_file: Any
) -> None:
    plans = json.loads(json.dumps(TEAM_PLANS))
    plans["plans"]["pro"].update(trialDays=14, trialRequiresCard=False, trialEndBehavior="pause")
    plans_file(plans)
    user = "plan-trial"
    headers = auth_headers(user)
    created = client.post("/api/create-checkout-session", json={"plan": "monthly"}, headers=headers)
    assert created.status_code == 200, created.get_json()
    session_id = created.get_json()["session"]["id"]
    session = billing.gateway.client.v1.checkout.sessions.retrieve(session_id)
    assert session.payment_method_collection == "if_required"
    assert session.amount_total == 0
    paid = pay_hosted_checkout(created.get_json()["session"]["url"], card="")
    assert paid.status_code == 303, paid.text[:300]
    billing.wait_for_webhooks()

    sub = client.get("/api/me", headers=headers).get_json()["subscription"]
    assert sub["status"] == "trialing" and sub["tier"] == "pro"
    assert sub["trialEndsAt"] == sub["trialEnd"] and sub["trialWillEndAt"] is None
    stripe_sub = billing.gateway.retrieve_subscription(sub["id"])
    assert stripe_sub["trial_settings"]["end_behavior"]["missing_payment_method"] == "pause"
    assert stripe_sub["default_payment_method"] is None

    # Bring the trial's end to just 3 days away: the sandbox sends
    # customer.subscription.trial_will_end when its clock reaches 3 days before the end (and
    # not at all for a trial shorter than that, as Stripe), so one second after it began.
    time.sleep(1.1)
    soon = int(time.time()) + 3 * 86_400
    billing.gateway.client.v1.subscriptions.update(sub["id"], {"trial_end": soon})
    billing.gateway.client.v1.customers.retrieve(stripe_sub["customer"])  # runs what is due
    billing.wait_for_webhooks()
    warned = client.get("/api/me", headers=headers).get_json()["subscription"]
    assert warned["trialEndsAt"] == soon * 1000
    assert warned["trialWillEndAt"] is not None

    # Switching interval during the trial: nothing due now, the first invoice at the trial's
    # end is the yearly price (Stripe neither prorates nor restarts the cycle in a trial).
    preview = client.post(
        "/api/subscription/preview-change", json={"plan": "yearly"}, headers=headers
    ).get_json()["preview"]
    yearly = billing.gateway.client.v1.prices.retrieve(billing.yearly)
    assert preview["amountDueNow"] == 0 and preview["prorationAmount"] == 0
    assert preview["nextInvoiceAmount"] == yearly.unit_amount
    assert preview["nextInvoiceAt"] == warned["trialEndsAt"]


def test_a_late_webhook_with_the_old_plan_does_not_undo_the_change(
    client: FlaskClient, billing: Billing
) -> None:
    user = "plan-late-hook"
    headers = auth_headers(user)
    subscribe(client, billing, user, plan="monthly")
    sub_id = client.get("/api/me", headers=headers).get_json()["subscription"]["id"]
    old = billing.gateway.client.v1.events.list({"type": "customer.subscription.created"}).data
    old_event = next(e for e in old if e.data.object.id == sub_id).to_dict(for_json=True)
    assert old_event["data"]["object"]["items"]["data"][0]["price"]["id"] == billing.monthly

    changed = client.post("/api/subscription/change", json={"plan": "yearly"}, headers=headers)
    assert changed.status_code == 200, changed.get_json()
    billing.wait_for_webhooks()
    # Stripe retries an old delivery (or it was held up): its state predates the change.
    late = {**old_event, "id": "evt_late_monthly_state"}
    assert post_webhook(client, late, billing.webhook_secret).status_code == 200
    me = client.get("/api/me", headers=headers).get_json()["subscription"]
    assert me["priceId"] == billing.yearly and me["interval"] == "year"


def test_a_trial_is_for_the_first_subscription_only(
    client: FlaskClient, billing: Billing, plans_file: Any
) -> None:
    plans = json.loads(json.dumps(TEAM_PLANS))
    plans["plans"]["pro"].update(trialDays=7)  # a card is asked for (the default)
    plans_file(plans)
    user = "plan-second-trial"
    headers = auth_headers(user)
    first = client.post("/api/create-checkout-session", json={"plan": "monthly"}, headers=headers)
    session = billing.gateway.client.v1.checkout.sessions.retrieve(
        first.get_json()["session"]["id"]
    )
    assert session.amount_total == 0 and session.payment_method_collection == "always"
    assert pay_hosted_checkout(first.get_json()["session"]["url"]).status_code == 303
    billing.wait_for_webhooks()
    assert client.get("/api/me", headers=headers).get_json()["subscription"]["status"] == "trialing"
    ended = client.post("/api/cancel-subscription", json={"immediately": True}, headers=headers)
    assert ended.status_code == 200, ended.get_json()

    again = client.post("/api/create-checkout-session", json={"plan": "monthly"}, headers=headers)
    assert again.status_code == 200, again.get_json()
    second = billing.gateway.client.v1.checkout.sessions.retrieve(again.get_json()["session"]["id"])
    monthly = billing.gateway.client.v1.prices.retrieve(billing.monthly)
    assert second.amount_total == monthly.unit_amount  # no second free trial
    billing.wait_for_webhooks()
