"""Test clocks: renewal, failed renewal with dunning, final cancellation."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe
from sandbox_helpers import create_session, pay

from stripe_sandbox import Sandbox

DAY = 86400
T0 = int(datetime(2030, 1, 31, 12, 0, tzinfo=UTC).timestamp())
FEB_28 = int(datetime(2030, 2, 28, 12, 0, tzinfo=UTC).timestamp())
MAR_31 = int(datetime(2030, 3, 31, 12, 0, tzinfo=UTC).timestamp())


def clock_customer(client: stripe.StripeClient) -> tuple[Any, Any]:
    clock = client.v1.test_helpers.test_clocks.create(
        params={"frozen_time": T0, "name": "renewals"}
    )
    customer = client.v1.customers.create(
        params={"email": "clock@example.com", "test_clock": clock.id}
    )
    return clock, customer


def checkout(
    client: stripe.StripeClient, customer: Any, price: Any, card: str, **extra: Any
) -> Any:
    session = create_session(client, price.id, customer=customer.id, **extra)
    assert pay(session.url, card).status_code == 303
    return client.v1.subscriptions.retrieve(
        client.v1.checkout.sessions.retrieve(session.id).subscription
    )


def advance(client: stripe.StripeClient, clock: Any, to: int) -> Any:
    result = client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": to})
    assert result.frozen_time == to
    again = client.v1.test_helpers.test_clocks.retrieve(clock.id)
    assert again.status == "ready" and again.frozen_time == to
    return again


def test_clock_renewal(
    client: stripe.StripeClient, sb: Sandbox, hook: Any, catalog: dict[str, Any]
) -> None:
    clock, customer = clock_customer(client)
    assert customer.created == T0 and customer.test_clock == clock.id
    sub = checkout(client, customer, catalog["monthly"], "4242424242424242")
    assert sub.status == "active" and sub.created == T0 and sub.test_clock == clock.id
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (T0, FEB_28)

    advance(client, clock, FEB_28 + 3600)
    renewed = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    item = renewed["items"].data[0]
    assert renewed.status == "active"
    assert (item.current_period_start, item.current_period_end) == (FEB_28, MAR_31)
    invoice = renewed.latest_invoice
    assert invoice.id != sub.latest_invoice and invoice.billing_reason == "subscription_cycle"
    assert invoice.status == "paid" and invoice.amount_paid == 1900
    assert invoice.created == FEB_28
    assert invoice.lines.data[0].period.start == FEB_28
    assert invoice.lines.data[0].period.end == MAR_31
    invoices = client.v1.invoices.list(params={"subscription": sub.id})
    assert [i.billing_reason for i in invoices.data] == [
        "subscription_cycle",
        "subscription_create",
    ]

    updated = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert updated.created == FEB_28
    assert updated.data.object["items"].data[0].current_period_end == MAR_31
    assert updated.data.previous_attributes["items"].data[0].current_period_end == FEB_28
    paid = client.v1.events.list(params={"type": "invoice.paid"}).data[0]
    assert paid.data.object.id == invoice.id

    assert sb.wait_for_webhooks(5)
    types = hook.types()
    assert types.count("invoice.paid") == 2
    assert "test_helpers.test_clock.ready" in types
    headers = [h for h, _ in hook.deliveries]
    stamp = int(headers[-1]["Stripe-Signature"].split(",")[0][2:])
    assert abs(stamp - time.time()) < 120  # signature time is wall time, not clock time

    # a second advance keeps renewing on the anchor's calendar (31st -> Apr 30)
    advance(client, clock, MAR_31 + 3600)
    item = client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
    assert item.current_period_end == int(datetime(2030, 4, 30, 12, 0, tzinfo=UTC).timestamp())


@pytest.mark.parametrize("outcome", ["canceled", "unpaid"])
def test_failed_renewal_after_trial(
    client: stripe.StripeClient, sb: Sandbox, hook: Any, catalog: dict[str, Any], outcome: str
) -> None:
    sb.configure(failed_payment_outcome=outcome)
    clock, customer = clock_customer(client)
    sub = checkout(
        client,
        customer,
        catalog["monthly"],
        "4000 0000 0000 0341",
        subscription_data={"trial_period_days": 7},
    )
    assert sub.status == "trialing" and sub.trial_end == T0 + 7 * DAY

    advance(client, clock, sub.trial_end + 3600)
    past_due = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert past_due.status == "past_due"
    invoice = past_due.latest_invoice
    assert invoice.status == "open" and invoice.attempt_count == 1
    assert invoice.next_payment_attempt == sub.trial_end + 3 * DAY
    failed = client.v1.events.list(params={"type": "invoice.payment_failed"}).data
    assert len(failed) == 1 and failed[0].data.object.id == invoice.id
    assert "customer.subscription.trial_will_end" in {
        e.type for e in client.v1.events.list(params={"limit": 100}).data
    }

    advance(client, clock, sub.trial_end + 4 * DAY)
    assert client.v1.invoices.retrieve(invoice.id).attempt_count == 2
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"

    advance(client, clock, sub.trial_end + 8 * DAY)
    final = client.v1.subscriptions.retrieve(sub.id)
    assert final.status == outcome
    assert client.v1.invoices.retrieve(invoice.id).attempt_count == 4
    assert len(client.v1.events.list(params={"type": "invoice.payment_failed"}).data) == 4
    deleted = client.v1.events.list(params={"type": "customer.subscription.deleted"}).data
    if outcome == "canceled":
        assert final.ended_at == sub.trial_end + 7 * DAY
        assert final.cancellation_details.reason == "payment_failed"
        assert len(deleted) == 1 and deleted[0].data.object.status == "canceled"
        assert client.v1.subscriptions.list(params={"customer": customer.id}).data == []
        assert len(client.v1.subscriptions.list(params={"status": "all"}).data) == 1
    else:
        assert deleted == []
        last = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
        assert last.data.previous_attributes.status == "past_due"
    assert sb.wait_for_webhooks(5)
    assert "invoice.payment_failed" in hook.types()


def test_cancel_at_period_end_then_final_cancellation(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    clock, customer = clock_customer(client)
    sub = checkout(client, customer, catalog["monthly"], "4242424242424242")
    updated = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert updated.cancel_at_period_end is True and updated.cancel_at == FEB_28
    assert updated.status == "active"

    advance(client, clock, FEB_28 - DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    advance(client, clock, FEB_28 + DAY)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert ended.status == "canceled" and ended.ended_at == FEB_28
    deleted = client.v1.events.list(params={"type": "customer.subscription.deleted"}).data
    assert len(deleted) == 1 and deleted[0].created == FEB_28
    assert len(client.v1.invoices.list(params={"customer": customer.id}).data) == 1


def test_trial_converts_and_clock_objects(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    clock, customer = clock_customer(client)
    sub = checkout(
        client,
        customer,
        catalog["monthly"],
        "4242424242424242",
        subscription_data={"trial_period_days": 30},
    )
    advance(client, clock, sub.trial_end + 60)
    active = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert active.status == "active" and active.latest_invoice.amount_paid == 1900
    assert active.billing_cycle_anchor == sub.trial_end
    assert active["items"].data[0].current_period_start == sub.trial_end
    clocks = client.v1.test_helpers.test_clocks.list()
    assert [c.id for c in clocks.data] == [clock.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": T0})
    deleted = client.v1.test_helpers.test_clocks.delete(clock.id)
    assert deleted.deleted is True


def test_past_due_invoice_paid_on_hosted_page(
    client: stripe.StripeClient, catalog: dict[str, Any]
) -> None:
    clock, customer = clock_customer(client)
    sub = checkout(
        client,
        customer,
        catalog["monthly"],
        "4000000000000341",
        subscription_data={"trial_period_days": 7},
    )
    advance(client, clock, sub.trial_end + 60)
    invoice = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert invoice.status == "open"
    declined = pay(invoice.hosted_invoice_url, "4000000000000002")
    assert declined.status_code == 402 and "declined" in declined.text
    assert pay(invoice.hosted_invoice_url, "4242 4242 4242 4242").status_code == 303
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    last = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert last.data.previous_attributes.status == "past_due"
