"""Right under races and Stripe faults at checkout (issue 18, findings 2, 3, 6 and 9): prices
resolved lazily and healed when Stripe returns, a double-clicked checkout leaves one payable
session, two payments never stay two subscriptions, the success page racing its webhooks never
deadlocks, and a cancel answers what /api/me says afterwards.

Real processes only: the sandbox (its delay and black-hole faults), app instances on real ports,
threads issuing real HTTP calls in parallel, PostgreSQL when TEST_DATABASE_URL names it."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from conftest import Billing, auth_headers
from flask.testing import FlaskClient
from support import portal_action, subscribe

pytestmark = pytest.mark.slow


def me(client: FlaskClient, user: str) -> dict[str, Any]:
    reply = client.get("/api/me", headers=auth_headers(user))
    assert reply.status_code == 200, reply.get_json()
    return dict(reply.get_json())


# -- finding 9: the cancel-now reply is the row after the change --------------------------------


def test_cancel_now_after_a_plan_switch_answers_what_me_says_afterwards(
    client: FlaskClient, billing: Billing
) -> None:
    """The cancel's own webhook is applied (by the app's applier thread) while Stripe's answer
    to the DELETE is still on its way: the request then has nothing left to write, and its reply
    must still show the state after the cancel (free), not the user it loaded before (pro)."""
    user = "cancel-after-switch"
    headers = auth_headers(user)
    subscribe(client, billing, user)
    portal = client.post("/api/create-portal-session", json={}, headers=headers).get_json()
    switched = portal_action(portal["url"], "switch", price=billing.yearly)
    assert switched.status_code in (302, 303), switched.text[:300]
    billing.wait_for_webhooks()
    assert me(client, user)["user"]["tier"] == "pro"

    # The work is done at once (the deletion event goes out), the answer comes 2 s later.
    billing.sandbox.configure(fault_path="/v1/subscriptions/", fault_answer_delay=2.0)
    try:
        reply = requests.post(
            f"{billing.live_url}/api/cancel-subscription",
            json={"immediately": True},
            headers=headers,
            timeout=30,
        )
    finally:
        billing.sandbox.configure(fault_answer_delay=0)
    assert reply.status_code == 200, reply.text
    billing.wait_for_webhooks()
    after = me(client, user)
    answered = reply.json()["subscription"]
    assert (answered["status"], answered["tier"]) == ("canceled", "free")
    assert (answered["status"], answered["tier"]) == (
        after["subscription"]["status"],
        after["user"]["tier"],
    )
