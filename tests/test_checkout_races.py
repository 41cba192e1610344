"""Right under races and Stripe faults at checkout (issue 18, findings 2, 3, 6 and 9): prices
resolved lazily and healed when Stripe returns, a double-clicked checkout leaves one payable
session, two payments never stay two subscriptions, the success page racing its webhooks never
deadlocks, and a cancel answers what /api/me says afterwards.

Real processes only: the sandbox (its delay and black-hole faults), app instances on real ports,
threads issuing real HTTP calls in parallel, PostgreSQL when TEST_DATABASE_URL names it."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from app_instance import serve_instance
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from support import (
    Billing,
    auth_headers,
    is_postgres,
    pay_hosted_checkout,
    portal_action,
    subscribe,
    wait_until,
)

from app.billing.accounts.users import get_or_create_user
from app.db import LockConflict, retry_on_deadlock
from app.extensions import db
from app.models import AuditEntry

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


# -- finding 2: prices by lookup key, resolved lazily, healed when Stripe returns ---------------


def test_prices_by_lookup_key_never_block_boot_and_heal_when_stripe_returns(
    app: Flask, billing: Billing
) -> None:
    user = "lookup-key-buyer"
    headers = auth_headers(user)
    billing.sandbox.configure(fault_path="/v1/", fault_blackhole=True)
    try:
        started = time.monotonic()
        with serve_instance(
            app,
            STRIPE_PRICE_ID_MONTHLY="",
            STRIPE_PRICE_ID_YEARLY="",
            STRIPE_PRICE_LOOKUP_KEY_MONTHLY="pro_monthly",
            STRIPE_PRICE_LOOKUP_KEY_YEARLY="pro_yearly",
            STRIPE_CONNECT_TIMEOUT=1.0,
            STRIPE_READ_TIMEOUT=4.0,
            STRIPE_BREAKER_COOLDOWN=0,
            PRICE_LOOKUP_RETRY_SECONDS=1,
            PRICE_LOOKUP_RETRY_MAX_SECONDS=2,
        ) as instance:
            reply = requests.get(f"{instance.url}/api/me", headers=headers, timeout=30)
            booted_and_answered = time.monotonic() - started
            assert reply.status_code == 200, reply.text
            # Before: the boot asked Stripe for both keys (4 s each, black-holed).
            assert booted_and_answered < 3.0, f"boot + /api/me took {booted_and_answered:.1f} s"

            def checkout() -> requests.Response:
                return requests.post(
                    f"{instance.url}/api/create-checkout-session",
                    json={"plan": "monthly"},
                    headers=headers,
                    timeout=30,
                )

            asked = time.monotonic()
            refused = checkout()
            assert time.monotonic() - asked < 8.0
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "payment_provider_unavailable"
            assert refused.headers["Retry-After"]
            # While the back-off runs, Stripe is not asked again: the answer is immediate.
            asked = time.monotonic()
            again = checkout()
            assert again.status_code == 503 and time.monotonic() - asked < 1.0
            me_started = time.monotonic()
            assert requests.get(f"{instance.url}/api/me", headers=headers, timeout=30).ok
            assert time.monotonic() - me_started < 1.0, "/api/me waits on nothing of Stripe's"

            billing.sandbox.configure(fault_blackhole=False)
            deadline = time.monotonic() + 15
            while (healed := checkout()).status_code == 503:
                assert time.monotonic() < deadline, "the lookup never healed"
                time.sleep(0.3)
            assert healed.status_code == 200, healed.text
            plans = requests.get(f"{instance.url}/api/plans", timeout=30)
            assert plans.status_code == 200, plans.text
            pro = next(plan for plan in plans.json()["plans"] if plan["id"] == "pro")
            assert sorted(price["id"] for price in pro["prices"]) == sorted(
                [billing.monthly, billing.yearly]
            )
    finally:
        billing.sandbox.configure(fault_blackhole=False)


# -- finding 3: a double-clicked checkout leaves one payable session ----------------------------


def burst(url: str, user: str, n: int = 20, plan: str = "monthly") -> list[requests.Response]:
    """`n` checkouts for one user released at the same instant, as real HTTP calls."""
    barrier = threading.Barrier(n)
    headers = auth_headers(user)

    def one(_: int) -> requests.Response:
        barrier.wait()
        return requests.post(
            f"{url}/api/create-checkout-session", json={"plan": plan}, headers=headers, timeout=60
        )

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def one_session_for_all(replies: list[requests.Response]) -> str:
    """Every reply names the same session (or says another checkout is in progress)."""
    statuses = Counter(reply.status_code for reply in replies)
    assert set(statuses) <= {200, 409}, {r.status_code: r.text for r in replies}
    refused = {reply.json()["error"]["code"] for reply in replies if reply.status_code == 409}
    assert refused <= {"checkout_in_progress"}
    ids = {reply.json()["session"]["id"] for reply in replies if reply.status_code == 200}
    assert len(ids) == 1, f"{len(ids)} different sessions from one burst ({statuses})"
    return ids.pop()


def test_a_double_clicked_checkout_leaves_one_payable_session(
    client: FlaskClient, billing: Billing
) -> None:
    user = "double-click"
    first = one_session_for_all(burst(billing.live_url, user))  # a brand-new customer
    customer = me(client, user)["user"]["stripeCustomerId"]
    opened = billing.gateway.list_open_checkout_sessions(customer)
    assert [session["id"] for session in opened] == [first]

    second = one_session_for_all(burst(billing.live_url, user))  # an existing customer
    assert second == first, "the open session is handed back, not replaced"
    assert [s["id"] for s in billing.gateway.list_open_checkout_sessions(customer)] == [first]

    # Another plan replaces it (the user changed their mind): still one payable session.
    yearly = one_session_for_all(burst(billing.live_url, user, n=5, plan="yearly"))
    assert [s["id"] for s in billing.gateway.list_open_checkout_sessions(customer)] == [yearly]

    url = billing.gateway.retrieve_checkout_session(yearly)["url"]
    assert pay_hosted_checkout(url).status_code == 303
    billing.wait_for_webhooks()
    after = burst(billing.live_url, user, n=5)
    assert {reply.status_code for reply in after} == {409}
    assert {reply.json()["error"]["code"] for reply in after} == {"subscription_exists"}


# -- finding 3: two payments never stay two subscriptions; refunds ------------------------------


def live_in_stripe(billing: Billing, customer_id: str) -> list[str]:
    listed = billing.gateway.client.v1.subscriptions.list({"customer": customer_id}).data
    return [sub.id for sub in listed if sub.status in ("active", "trialing", "past_due")]


def audit_entries(app: Flask, action: str) -> list[AuditEntry]:
    with app.app_context():
        rows = db.session.execute(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
        found = list(rows.scalars())
        db.session.remove()
    return found


def test_a_second_payment_is_canceled_and_refunded_at_once(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    """Two payments in the same instant (the second made straight in Stripe: no check of ours
    can stand in between): with the cancel_newer policy the newer subscription is canceled and
    its first invoice refunded in full as soon as its events are applied, not at the next
    `billing check`."""
    user = "paid-twice-at-once"
    app.config["DUPLICATE_SUBSCRIPTION_POLICY"] = "cancel_newer"
    try:
        subscribe(client, billing, user)
        customer = me(client, user)["user"]["stripeCustomerId"]
        second = billing.gateway.create_checkout_session(
            user_id=user,
            customer_id=customer,
            price_id=billing.yearly,
            success_url="http://localhost:5173/ok",
            cancel_url="http://localhost:5173/no",
            metadata={},
        )
        assert pay_hosted_checkout(second["url"]).status_code == 303
        # The oldest is kept (the id decides between two made in the same second).
        both = billing.gateway.client.v1.subscriptions.list({"customer": customer}).data
        kept, newer = (sub.id for sub in sorted(both, key=lambda s: (s.created, s.id)))
        billing.wait_for_webhooks()
        wait_until(lambda: live_in_stripe(billing, customer) == [kept], timeout=15)
        wait_until(lambda: audit_entries(app, "duplicate.cancel_refund"), timeout=15)
    finally:
        app.config["DUPLICATE_SUBSCRIPTION_POLICY"] = "flag"
    invoice = billing.gateway.client.v1.invoices.list({"subscription": newer}).data[0]
    assert invoice.amount_paid in (1900, 18000)
    payment = billing.gateway.invoice_payment_intent(invoice.id)
    refunds = billing.gateway.client.v1.refunds.list({"payment_intent": payment}).data
    assert [(refund.amount, refund.reason) for refund in refunds] == [
        (invoice.amount_paid, "duplicate")
    ]
    billing.wait_for_webhooks()
    body = me(client, user)
    assert body["subscriptions"] is None and body["subscription"]["id"] == kept
    assert body["user"]["tier"] == "pro"
    [entry] = audit_entries(app, "duplicate.cancel_refund")
    assert (entry.user_id, entry.stripe_object) == (user, newer)
    assert refunds[0].id in (entry.detail or "")


def test_billing_check_cancels_and_refunds_a_duplicate_as_the_at_once_path_does(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    """Left from issue 18: `flask billing check` with the cancel_newer policy canceled the newer
    duplicate prorated (unused time as Stripe credit on the customer) where the at-once path
    cancels it and refunds its first invoice in full. Now both do the same, audited. Replay-safe
    for real: the refund's answer is lost on its way back (the sandbox does the refund, then
    drops the connection), that run reports the error and leaves the subscription live; the next
    run is answered the same refund by its idempotency key, cancels, and audits once."""
    user = "paid-twice-found-by-check"
    subscribe(client, billing, user)  # the suite's policy is "flag": nothing acts at once
    customer = me(client, user)["user"]["stripeCustomerId"]
    second = billing.gateway.create_checkout_session(
        user_id=user,
        customer_id=customer,
        price_id=billing.yearly,
        success_url="http://localhost:5173/ok",
        cancel_url="http://localhost:5173/no",
        metadata={},
    )
    assert pay_hosted_checkout(second["url"]).status_code == 303
    billing.wait_for_webhooks()
    both = billing.gateway.client.v1.subscriptions.list({"customer": customer}).data
    kept, newer = (sub.id for sub in sorted(both, key=lambda s: (s.created, s.id)))
    wait_until(lambda: me(client, user)["subscriptions"] is not None, timeout=15)

    def check() -> Any:
        return app.test_cli_runner().invoke(args=["billing", "check"])

    app.config["DUPLICATE_SUBSCRIPTION_POLICY"] = "cancel_newer"
    try:
        billing.sandbox.configure(fault_path="/v1/refunds", fault_drop_answers=1)
        try:
            lost = check()
        finally:
            billing.sandbox.configure(fault_path="/v1/", fault_drop_answers=0)
        assert lost.exit_code == 1, lost.output
        assert sorted(live_in_stripe(billing, customer)) == sorted([kept, newer])
        done = check()
        billing.wait_for_webhooks()
        wait_until(lambda: me(client, user)["subscriptions"] is None, timeout=15)
        again = check()
    finally:
        app.config["DUPLICATE_SUBSCRIPTION_POLICY"] = "flag"
    print(lost.output, done.output, again.output, sep="\n---\n")
    assert done.exit_code == 0, done.output
    assert f"canceled {newer}" in done.output and "refund" in done.output, done.output
    assert again.exit_code == 0 and "no user has more than one" in again.output, again.output
    assert live_in_stripe(billing, customer) == [kept]
    invoice = billing.gateway.client.v1.invoices.list({"subscription": newer}).data[-1]
    assert invoice.amount_paid in (1900, 18000)
    payment = billing.gateway.invoice_payment_intent(invoice.id)
    refunds = billing.gateway.client.v1.refunds.list({"payment_intent": payment}).data
    # One refund of the whole first invoice (the lost answer's refund, replayed), no credit.
    assert [(refund.amount, refund.reason) for refund in refunds] == [
        (invoice.amount_paid, "duplicate")
    ]
    assert billing.gateway.client.v1.customers.retrieve(customer).balance == 0
    body = me(client, user)
    assert body["subscription"]["id"] == kept and body["user"]["tier"] == "pro"
    [entry] = audit_entries(app, "duplicate.cancel_refund")
    assert (entry.user_id, entry.stripe_object) == (user, newer)
    assert refunds[0].id in (entry.detail or "")


def test_ops_refund_command_refunds_once_per_amount_and_audits(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    user = "refund-by-ops"
    subscribe(client, billing, user)
    subscription = billing.gateway.retrieve_subscription(me(client, user)["subscription"]["id"])
    invoice = subscription["latest_invoice"]

    def refund(*args: str) -> Any:
        return app.test_cli_runner().invoke(args=["billing", "refund", *args])

    partial = refund(invoice, "--amount", "500")
    assert partial.exit_code == 0, partial.output
    repeated = refund(invoice, "--amount", "500")  # a retry: replayed, never paid twice
    assert repeated.exit_code == 0 and repeated.output == partial.output
    rest = refund(invoice)
    assert rest.exit_code == 0 and ": 1400 usd" in rest.output
    payment = billing.gateway.invoice_payment_intent(invoice)
    refunds = billing.gateway.client.v1.refunds.list({"payment_intent": payment}).data
    assert sorted(r.amount for r in refunds) == [500, 1400]

    # "The rest" again, by its payment: the same refund replayed, nothing more paid out.
    replayed = refund(str(payment))
    assert (
        replayed.exit_code == 0
        and replayed.output.split(": ", 1)[1] == rest.output.split(": ", 1)[1]
    )
    nothing_left = refund(str(payment), "--amount", "1")
    assert nothing_left.exit_code == 1 and "refused" in nothing_left.output
    assert refund("cus_123").exit_code == 2  # not something that can be refunded
    entries = audit_entries(app, "ops.refund")
    assert [e.outcome for e in entries] == ["ok"] * 4 + ["payment_provider_rejected"]
    assert all(e.stripe_object in (invoice, payment) for e in entries)


# -- finding 6: the success page racing its webhooks never deadlocks ----------------------------


def test_success_page_loaded_twice_racing_the_webhooks_never_answers_database_unavailable(
    client: FlaskClient, billing: Billing, caplog: pytest.LogCaptureFixture
) -> None:
    """Eight purchases; each success page is loaded twice at once while the sandbox delivers
    the purchase's webhooks (applied by the app's applier thread). Locks are taken user first,
    then subscription, everywhere; a deadlock's victim is retried once and would answer 503
    `retry`, never `database_unavailable` nor a "database unavailable" log line."""
    replies: list[requests.Response] = []
    with caplog.at_level(logging.WARNING):
        for n in range(8):
            user = f"success-race-{n}"
            headers = auth_headers(user)
            created = client.post(
                "/api/create-checkout-session", json={"plan": "monthly"}, headers=headers
            )
            assert created.status_code == 200, created.get_json()
            session = created.get_json()["session"]
            barrier = threading.Barrier(2)

            def success_page(
                _: int,
                session_id: str = session["id"],
                h: Any = headers,
                together: threading.Barrier = barrier,
            ) -> Any:
                together.wait()
                return requests.post(
                    f"{billing.live_url}/api/retrieve-checkout-session",
                    json={"sessionId": session_id},
                    headers=h,
                    timeout=60,
                )

            assert pay_hosted_checkout(session["url"]).status_code == 303
            with ThreadPoolExecutor(2) as pool:
                replies += list(pool.map(success_page, range(2)))
        billing.wait_for_webhooks()
    statuses = Counter(reply.status_code for reply in replies)
    assert statuses == {200: 16}, [reply.text for reply in replies if reply.status_code != 200]
    assert not [r for r in caplog.records if "database unavailable" in r.getMessage()]
    for n in range(8):
        assert me(client, f"success-race-{n}")["user"]["tier"] == "pro"


@pytest.mark.skipif(not is_postgres(), reason="a deadlock is PostgreSQL's (SQLite queues writers)")
def test_a_deadlock_victim_is_retried_once_then_answered_503_retry(
    app: Flask, billing: Billing, caplog: pytest.LogCaptureFixture
) -> None:
    """Real deadlocks: a second connection takes the rows in the other order each time. The
    first loss is retried; the second is LockConflict, answered 503 `retry` (not
    database_unavailable, no "database unavailable" line)."""
    with app.app_context():
        for name in ("dl-a", "dl-b"):
            get_or_create_user(name)
        db.session.commit()
        engine = db.engine  # the helper thread has no app context
        attempts = 0

        def work() -> None:
            nonlocal attempts
            attempts += 1
            locked_b, locked_a = threading.Event(), threading.Event()

            def other_order() -> None:
                with engine.connect() as other:
                    # Ours checks for the deadlock first (1 s), so ours is the victim.
                    other.execute(text("SET LOCAL deadlock_timeout = '10s'"))
                    other.execute(text("SELECT 1 FROM users WHERE id = 'dl-b' FOR UPDATE"))
                    locked_b.set()
                    locked_a.wait(10)
                    time.sleep(0.3)
                    other.execute(text("SELECT 1 FROM users WHERE id = 'dl-a' FOR UPDATE"))
                    other.rollback()

            helper = threading.Thread(target=other_order)
            helper.start()
            try:
                locked_b.wait(10)
                db.session.execute(text("SELECT 1 FROM users WHERE id = 'dl-a' FOR UPDATE"))
                locked_a.set()
                db.session.execute(text("SELECT 1 FROM users WHERE id = 'dl-b' FOR UPDATE"))
                db.session.commit()
            finally:
                helper.join(15)

        with caplog.at_level(logging.WARNING), pytest.raises(LockConflict):
            retry_on_deadlock(work)
        assert attempts == 2
        with app.test_request_context("/api/retrieve-checkout-session", method="POST"):
            response = app.make_response(app.handle_user_exception(LockConflict("lost twice")))
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "retry"
        assert response.headers["Retry-After"]
        assert not [r for r in caplog.records if "database unavailable" in r.getMessage()]
        db.session.remove()
