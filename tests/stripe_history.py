"""Run subscription histories in the sandbox and collect the events Stripe emitted for them.

A history is played on a test clock customer with no webhook endpoint registered, so nothing
reaches the app until the test delivers the collected events itself, in whatever order and as
many times as it likes. The events come from `GET /v1/events` as raw JSON, exactly the bytes
Stripe would have signed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
import stripe
from flask import Flask
from support import CARD_FAILS_LATER, CARD_OK, TEST_STRIPE_KEY, Billing, pay_hosted_checkout

from app.billing.subscriptions.ordering import subscription_fields
from app.embedded_stripe import seed_catalog
from app.extensions import db
from app.models import Subscription, User

T0 = int(datetime(2031, 3, 1, 12, 0, tzinfo=UTC).timestamp())
DAY = 86_400


def drop_endpoints(billing: Billing) -> None:
    """No deliveries: the test decides what reaches the app, and when."""
    client = billing.gateway.client
    for endpoint in client.v1.webhook_endpoints.list().data:
        client.v1.webhook_endpoints.delete(endpoint.id)


def raw_events(billing: Billing, customer_id: str | None = None) -> list[dict[str, Any]]:
    """Every event (oldest first) as Stripe's JSON, optionally only those about a customer."""
    url = f"{billing.sandbox.url}/v1/events"
    headers = {"Authorization": f"Bearer {TEST_STRIPE_KEY}"}
    params: dict[str, Any] = {"limit": 100}
    events: list[dict[str, Any]] = []
    while True:
        page = requests.get(url, params=params, headers=headers, timeout=10).json()
        events.extend(page["data"])
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    events.reverse()
    if customer_id is None:
        return events
    return [event for event in events if _concerns(event, customer_id)]


def _concerns(event: dict[str, Any], customer_id: str) -> bool:
    obj = event["data"]["object"]
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return obj.get("id") == customer_id or customer == customer_id


@dataclass
class History:
    """One customer's subscription, driven through the SDK, the hosted pages and a clock."""

    billing: Billing
    user_id: str
    client: stripe.StripeClient
    prices: dict[str, str]
    clock_id: str = ""
    customer_id: str = ""
    subscription_id: str = ""
    steps: list[str] = field(default_factory=list)

    @classmethod
    def fresh(cls, billing: Billing, user_id: str) -> History:
        """Reset the sandbox (no endpoint) and seed the catalog: one history per world."""
        billing.sandbox.reset()
        billing.sandbox.configure(retry_time_scale=0.0005)
        prices = seed_catalog(billing.gateway)
        return cls(billing, user_id, billing.gateway.client, prices)

    @property
    def now(self) -> int:
        return int(self.client.v1.test_helpers.test_clocks.retrieve(self.clock_id).frozen_time)

    def start(
        self,
        *,
        plan: str = "monthly",
        card: str = CARD_OK,
        trial_days: int | None = None,
        with_metadata: bool = True,
    ) -> str:
        clock = self.client.v1.test_helpers.test_clocks.create(
            {"frozen_time": T0, "name": self.user_id}
        )
        self.clock_id = clock.id
        customer = self.client.v1.customers.create(
            {
                "email": f"{self.user_id}@example.com",
                "metadata": {"userId": self.user_id},
                "test_clock": clock.id,
            }
        )
        self.customer_id = customer.id
        subscription_data: dict[str, Any] = {}
        if with_metadata:
            subscription_data["metadata"] = {"userId": self.user_id}
        if trial_days:
            subscription_data["trial_period_days"] = trial_days
        params: dict[str, Any] = {
            "mode": "subscription",
            "customer": customer.id,
            "client_reference_id": self.user_id,
            "line_items": [{"price": self.prices[f"pro_{plan}"], "quantity": 1}],
            "success_url": "http://localhost:5173/done",
            "cancel_url": "http://localhost:5173/pricing",
            "metadata": {"userId": self.user_id},
        }
        if subscription_data:
            params["subscription_data"] = subscription_data
        session = self.client.v1.checkout.sessions.create(params)
        paid = pay_hosted_checkout(session.url, card)
        assert paid.status_code == 303, paid.text[:300]
        session = self.client.v1.checkout.sessions.retrieve(session.id)
        self.subscription_id = str(session.subscription)
        self.steps.append(f"start {plan} card={card[-4:]} trial={trial_days} meta={with_metadata}")
        return self.subscription_id

    def start_failing_later(self, plan: str = "monthly", *, with_metadata: bool = True) -> str:
        """A trial on a card that attaches but fails every charge: renewals then fail."""
        return self.start(
            plan=plan, card=CARD_FAILS_LATER, trial_days=3, with_metadata=with_metadata
        )

    # -- steps (each returns False when Stripe refuses it in the current state) --------------

    def current(self) -> dict[str, Any]:
        return self.billing.gateway.retrieve_subscription(self.subscription_id)

    def is_over(self) -> bool:
        return self.current()["status"] in ("canceled", "incomplete_expired")

    def _update(self, params: dict[str, Any], label: str) -> bool:
        try:
            self.client.v1.subscriptions.update(self.subscription_id, params)
        except stripe.StripeError:
            return False
        self.steps.append(label)
        return True

    def cancel_at_period_end(self) -> bool:
        return self._update({"cancel_at_period_end": True}, "cancel at period end")

    def resume(self) -> bool:
        return self._update({"cancel_at_period_end": False}, "resume")

    def swap(self, plan: str, proration_behavior: str = "create_prorations") -> bool:
        item = self.current()["items"]["data"][0]
        params = {
            "items": [{"id": item["id"], "price": self.prices[f"pro_{plan}"]}],
            "proration_behavior": proration_behavior,
        }
        return self._update(params, f"swap to {plan} ({proration_behavior})")

    def cancel_now(self) -> bool:
        try:
            self.client.v1.subscriptions.cancel(self.subscription_id)
        except stripe.StripeError:
            return False
        self.steps.append("cancel now")
        return True

    def advance(self, seconds: int) -> None:
        target = self.now + seconds
        self.client.v1.test_helpers.test_clocks.advance(self.clock_id, {"frozen_time": target})
        self.steps.append(f"advance {seconds}s")

    def renew(self) -> None:
        """Past the end of the current period (or trial): renewal, failure or final cancel."""
        item = self.current()["items"]["data"][0]
        target = max(int(item["current_period_end"]), self.now) + 3600
        self.client.v1.test_helpers.test_clocks.advance(self.clock_id, {"frozen_time": target})
        self.steps.append("renew")

    def events(self) -> list[dict[str, Any]]:
        return raw_events(self.billing, self.customer_id)


def clear_tables(app: Flask) -> None:
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()


def stored_state(app: Flask, subscription_id: str) -> dict[str, Any]:
    """Our copy of a subscription (the columns Stripe decides) and its owner's summary."""
    with app.app_context():
        row = db.session.get(Subscription, subscription_id)
        if row is None:
            return {}
        state = {name: getattr(row, name) for name in subscription_fields({})}
        state["user_id"] = row.user_id
        user = db.session.get(User, row.user_id) if row.user_id else None
        state["user.subscription_status"] = user.subscription_status if user else None
        state["user.stripe_customer_id"] = user.stripe_customer_id if user else None
        db.session.rollback()
        return state


def stripe_state(billing: Billing, subscription_id: str, user_id: str) -> dict[str, Any]:
    """What `stored_state` must be, computed from Stripe's current subscription."""
    subscription = billing.gateway.retrieve_subscription(subscription_id)
    state = subscription_fields(subscription)
    state["user_id"] = user_id
    state["user.subscription_status"] = subscription["status"]
    state["user.stripe_customer_id"] = state["customer_id"]
    return state
