"""Property: whatever order and however often Stripe delivers a subscription's events, the
stored state ends equal to Stripe's final state.

Hypothesis generates a history (plan, card, how the user is linked, then cancel at period
end, resume, price swaps, clock advances that renew or fail, deletion), plays it in the
sandbox with no endpoint registered, collects the events Stripe emitted, and delivers them to
the webhook several times over: in order, then in hypothesis-chosen orders with duplicates.
Each delivery starts from an empty database.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stripe_history import DAY, History, clear_tables, stored_state, stripe_state
from support import Billing, post_webhook

from app.billing.accounts.users import get_or_create_user
from app.extensions import db

PLANS = st.sampled_from(["monthly", "yearly"])
STEPS = st.one_of(
    st.just(("cancel_at_period_end",)),
    st.just(("resume",)),
    st.tuples(
        st.just("swap"), PLANS, st.sampled_from(["create_prorations", "none", "always_invoice"])
    ),
    st.tuples(st.just("advance"), st.sampled_from([1, 60, 3600, 2 * DAY])),
    st.just(("renew",)),
    st.just(("cancel_now",)),
)
# How the user is known when events arrive: the subscription's metadata.userId; the customer id
# stored on the user at checkout (as the API does); or only checkout.session.completed's
# client_reference_id, so subscription events arrive for a customer nobody knows yet.
LINKS = st.sampled_from(["metadata", "known_customer", "checkout_only"])

EXAMPLES = int(os.environ.get("ORDERING_EXAMPLES", "40"))
ORDERS_PER_HISTORY = 5


def play(history: History, start: dict[str, Any], steps: list[tuple[Any, ...]]) -> None:
    with_metadata = start["link"] == "metadata"
    if start["failing"]:
        history.start_failing_later(start["plan"], with_metadata=with_metadata)
    else:
        history.start(plan=start["plan"], with_metadata=with_metadata)
    for step in steps:
        if history.is_over():
            break
        kind = step[0]
        if kind == "cancel_at_period_end":
            history.cancel_at_period_end()
        elif kind == "resume":
            history.resume()
        elif kind == "swap":
            history.swap(step[1], step[2])
        elif kind == "advance":
            history.advance(step[1])
        elif kind == "renew":
            history.renew()
        elif kind == "cancel_now":
            history.cancel_now()


def deliver(
    app: Flask,
    client: FlaskClient,
    billing: Billing,
    history: History,
    link: str,
    events: list[dict[str, Any]],
) -> None:
    clear_tables(app)
    if link == "known_customer":
        with app.app_context():
            get_or_create_user(history.user_id).stripe_customer_id = history.customer_id
            db.session.commit()
    for event in events:
        reply = post_webhook(client, event, billing.webhook_secret)
        assert reply.status_code == 200, (event["type"], reply.get_json())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    start=st.fixed_dictionaries(
        {"plan": PLANS, "failing": st.booleans(), "link": LINKS},
        optional={"outcome": st.sampled_from(["canceled", "unpaid"])},
    ),
    steps=st.lists(STEPS, min_size=1, max_size=6),
    data=st.data(),
)
def test_any_delivery_order_with_duplicates_ends_in_stripes_state(
    app: Flask,
    client: FlaskClient,
    billing: Billing,
    start: dict[str, Any],
    steps: list[tuple[Any, ...]],
    data: st.DataObject,
) -> None:
    history = History.fresh(billing, "prop-user")
    billing.sandbox.configure(failed_payment_outcome=start.get("outcome", "canceled"))
    play(history, start, steps)
    events = history.events()
    expected = stripe_state(billing, history.subscription_id, history.user_id)

    orders: list[list[int]] = [list(range(len(events)))]
    for _ in range(ORDERS_PER_HISTORY - 1):
        extra = data.draw(st.lists(st.sampled_from(range(len(events))), max_size=len(events)))
        orders.append(data.draw(st.permutations(list(range(len(events))) + extra)))
    for order in orders:
        deliver(app, client, billing, history, start["link"], [events[i] for i in order])
        got = stored_state(app, history.subscription_id)
        delivered = [f"{events[i]['type']}@{events[i]['created']}" for i in order]
        assert got == expected, {"history": history.steps, "delivered": delivered}
