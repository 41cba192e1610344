"""The ordering rule, case by case, with the Stripe reads it costs
(app/billing/subscriptions/ordering.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from stripe_history import History, clear_tables, stored_state, stripe_state
from support import Billing, post_webhook

from app.billing.subscriptions.reads import apply_read
from app.billing.subscriptions.sync import sync_all
from app.extensions import db
from app.models import utcnow


def deliver(client: FlaskClient, billing: Billing, events: list[dict[str, Any]]) -> int:
    """POST the events in this order; return how many Stripe reads the app made meanwhile."""
    before = len(billing.stripe_calls("GET"))
    for event in events:
        reply = post_webhook(client, event, billing.webhook_secret)
        assert reply.status_code == 200, (event["type"], reply.get_json())
    return len(billing.stripe_calls("GET")) - before


def subscription_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"].startswith("customer.subscription.")]


def test_common_flows_delivered_in_order_make_no_stripe_call(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    history = History.fresh(billing, "in-order")
    history.start(plan="monthly")
    for step in (
        history.cancel_at_period_end,
        history.resume,
        lambda: history.swap("yearly"),
        history.renew,
        history.cancel_now,
    ):
        history.advance(60)
        assert step() is not False
    events = history.events()
    assert deliver(client, billing, events) == 0
    assert stored_state(app, history.subscription_id) == stripe_state(
        billing, history.subscription_id, history.user_id
    )


def test_checkouts_incomplete_then_active_pair_is_ordered_without_stripe(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    """Both events carry the same second; `incomplete` can only come first."""
    history = History.fresh(billing, "pair")
    history.start()
    created, updated = subscription_events(history.events())
    assert created["created"] == updated["created"]
    assert created["data"]["object"]["status"] == "incomplete"
    assert deliver(client, billing, [updated, created]) == 0
    assert stored_state(app, history.subscription_id)["status"] == "active"


def test_an_older_event_is_skipped_without_stripe(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    history = History.fresh(billing, "older")
    history.start()
    history.advance(60)
    history.cancel_at_period_end()
    history.advance(60)
    history.resume()
    events = subscription_events(history.events())
    assert len({e["created"] for e in events[-2:]}) == 2
    # Newest first: the cancel (older than the resume we hold) must not win.
    assert deliver(client, billing, list(reversed(events))) == 0
    state = stored_state(app, history.subscription_id)
    assert state["cancel_at_period_end"] is False and state["status"] == "active"


def test_same_second_changes_delivered_backwards_are_settled_by_one_read(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    """Cancel then resume in one second (the clock stands still): the events alone can't say
    which came last, so the app re-reads the subscription, and only then."""
    history = History.fresh(billing, "same-second")
    history.start()
    history.advance(60)
    history.cancel_at_period_end()
    history.resume()
    *_, cancel, resume = subscription_events(history.events())
    assert cancel["created"] == resume["created"]
    assert cancel["data"]["object"]["cancel_at_period_end"] is True

    reads = deliver(client, billing, subscription_events(history.events())[:-2])
    assert reads == 0
    assert deliver(client, billing, [resume, cancel]) == 1
    assert stored_state(app, history.subscription_id) == stripe_state(
        billing, history.subscription_id, history.user_id
    )


def test_a_deleted_subscription_stays_deleted(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    history = History.fresh(billing, "final")
    history.start()
    history.advance(60)
    history.cancel_now()
    events = subscription_events(history.events())
    deleted = events[-1]
    assert deleted["type"] == "customer.subscription.deleted"
    # The deletion first, then every older view, several times over.
    assert deliver(client, billing, [deleted, *events, *events]) == 0
    state = stored_state(app, history.subscription_id)
    assert state["status"] == "canceled" and state["user.subscription_status"] == "canceled"


def test_events_for_an_unknown_customer_are_kept_and_adopted_at_checkout(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    """No metadata.userId and no user with this customer yet: the subscription waits as an
    orphan row until checkout.session.completed names its user."""
    history = History.fresh(billing, "late-user")
    history.start(with_metadata=False)
    events = history.events()
    checkout = [e for e in events if e["type"] == "checkout.session.completed"]
    others = [e for e in events if e["type"] != "checkout.session.completed"]
    clear_tables(app)
    deliver(client, billing, others)
    orphan = stored_state(app, history.subscription_id)
    assert orphan["status"] == "active" and orphan["user_id"] is None
    deliver(client, billing, checkout)
    assert stored_state(app, history.subscription_id) == stripe_state(
        billing, history.subscription_id, history.user_id
    )


def test_a_read_overtaken_by_a_webhook_is_not_stored(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    """Our own Stripe call answers, a webhook for a later change lands, then we store the
    answer: the row must keep the later state (app/billing/subscriptions/reads.py `apply_read`)."""
    history = History.fresh(billing, "overtaken")
    history.start()
    deliver(client, billing, history.events())
    with app.app_context():
        asked_at = utcnow()
        answer = billing.gateway.retrieve_subscription(history.subscription_id)
    history.advance(60)
    history.cancel_at_period_end()
    deliver(client, billing, subscription_events(history.events())[-1:])

    before = len(billing.stripe_calls("GET"))
    with app.app_context():
        apply_read(billing.gateway, answer, read_started=asked_at)
        db.session.commit()
    assert len(billing.stripe_calls("GET")) == before + 1
    assert stored_state(app, history.subscription_id)["cancel_at_period_end"] is True

    # A read that began after the last write (clock margin included) is stored as is.
    with app.app_context():
        fresh = billing.gateway.retrieve_subscription(history.subscription_id)
        before = len(billing.stripe_calls("GET"))
        apply_read(billing.gateway, fresh, read_started=utcnow() + timedelta(seconds=10))
        db.session.commit()
    assert len(billing.stripe_calls("GET")) == before


def test_sync_never_stores_a_listed_copy_a_webhook_overtook(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    """`billing sync` lists subscriptions, then writes them one by one; a webhook for a later
    change can land in between. The stale listed copy must not win."""
    history = History.fresh(billing, "sync-race")
    history.start()
    deliver(client, billing, history.events())

    def change_while_listing(stream: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for listed in stream:  # fetched from Stripe before the change below
            assert listed["cancel_at_period_end"] is False
            history.advance(60)
            history.cancel_at_period_end()
            deliver(client, billing, subscription_events(history.events())[-1:])
            yield listed

    with app.app_context():
        report = sync_all(billing.gateway, track=change_while_listing)
    assert report.errors == [] and report.rereads == 1
    assert stored_state(app, history.subscription_id)["cancel_at_period_end"] is True
