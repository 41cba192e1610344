"""SQL statements per webhook event, counted on the engine, so the lean paths can't regress.

Receiving: a delivery is one multi-row INSERT (shared by every delivery in flight in the
process) and its commit; a redelivery adds the duplicate's audit entry. Applying: a batch is one
claim (SELECT ... FOR UPDATE SKIP LOCKED), each event's own work (for an in-order subscription
event: one conditional upsert, plus the owner's summary when what it shows changed), one UPDATE
marking the batch processed and one INSERT of the batch's audit entries (one statement on
PostgreSQL), the savepoint around the
batch's work (so one failing event can be retried alone), and one commit. Nothing pings the
connection before use. SQLite's `BEGIN IMMEDIATE` is sent by our engine hook and not counted
(psycopg sends PostgreSQL's BEGIN itself).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from app_instance import Instance, serve_instance
from flask import Flask
from sqlalchemy import event, insert
from stripe_history import History
from support import (
    Billing,
    apply_recorded_events,
    is_postgres,
    sign_payload,
    suite_applier_paused,
)

from app.billing.webhooks.store import claim_ready
from app.extensions import db
from app.models import User, WebhookEvent, utcnow

SECRET = "whsec_statement_count"
# The batch's own statements: claim, mark processed, audit entries (on PostgreSQL the mark and
# the audit entries are one statement: applier_store.py, and the claim is planned as an index
# walk between a SET LOCAL and a RESET: store.claim_ready); and, once an event does work, the
# SAVEPOINT around the batch and its RELEASE.
BATCH_OVERHEAD = 4 if is_postgres() else 3
SAVEPOINT = 2
# On PostgreSQL an event first locks its owner's user row (lock order user, then subscription,
# so the success page and the webhooks of one purchase can't deadlock: docs/reliability.md).
# An invoice event's own work (app/billing/invoices/store.py): the upsert, the action's update.
INVOICE_KEPT = ("INSERT INTO invoices", "UPDATE users SET payment_action")


@dataclass
class Counted:
    statements: list[str] = field(default_factory=list)
    commits: int = 0

    @property
    def sql(self) -> list[str]:
        return [s for s in self.statements if not s.lstrip().upper().startswith("BEGIN")]


@contextmanager
def counting(app: Flask) -> Iterator[Counted]:
    counted = Counted()

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counted.statements.append(statement)

    def on_commit(conn: Any) -> None:
        counted.commits += 1

    # The webhook inbox's writer sends its statements on a connection of its own, in autocommit
    # on PostgreSQL, past the engine's events: each is a statement and its own commit.
    writer = app.extensions["webhook_writer"]
    execute = writer.execute

    def on_writer_statement(sql: str, params: Any) -> Any:
        counted.statements.append(sql)
        counted.commits += 1
        return execute(sql, params)

    hooks = {"before_cursor_execute": on_statement, "commit": on_commit}
    with app.app_context():
        engine = db.engine
    for name, hook in hooks.items():
        event.listen(engine, name, hook)
    writer.execute = on_writer_statement
    try:
        yield counted
    finally:
        del writer.execute
        for name, hook in hooks.items():
            event.remove(engine, name, hook)


@contextmanager
def receiver(app: Flask) -> Iterator[Instance]:
    """An instance whose events wait for the test to apply them: it has no applier thread, and
    the suite app's, which polls the same database, is paused (it used to take an event now and
    then before the test counted the statements of applying it)."""
    with (
        suite_applier_paused(app),
        serve_instance(app, STRIPE_WEBHOOK_SECRET=SECRET, WEBHOOK_APPLIER="off") as instance,
    ):
        yield instance


def deliver(instance: Instance, evt: dict[str, Any]) -> str:
    payload = json.dumps(evt)
    headers = {"Stripe-Signature": sign_payload(payload, SECRET)}
    reply = requests.post(instance.webhook_url, data=payload, headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["status"])


def describe(counted: Counted) -> str:
    return "\n".join(s.split("\n")[0][:120] for s in counted.sql)


def test_a_delivery_is_one_insert_and_one_commit(app: Flask, billing: Billing) -> None:
    history = History.fresh(billing, "lean-receive")
    history.start()
    first = history.events()[0]
    with receiver(app) as instance:
        with counting(instance.app) as counted:
            assert deliver(instance, first) == "recorded"
        assert len(counted.sql) == 1, describe(counted)
        assert counted.sql[0].lstrip().startswith("INSERT INTO webhook_events")
        assert counted.commits == 1
        with counting(instance.app) as counted:
            assert deliver(instance, first) == "duplicate"
        assert len(counted.sql) == 2, describe(counted)  # the insert, the duplicate's entry
        assert "INSERT INTO audit_log" in counted.sql[1]
        # SQLite: one transaction; PostgreSQL: two statements, each complete on its own.
        assert counted.commits == (2 if is_postgres() else 1)
        assert not any(s.strip() == "SELECT 1" for s in counted.statements)


def test_statements_per_applied_event(app: Flask, billing: Billing) -> None:
    history = History.fresh(billing, "lean-apply")
    history.start()
    with receiver(app) as instance:
        for evt in history.events():
            deliver(instance, evt)
        apply_recorded_events(instance.app, alone=True)
        history.advance(60)
        history.cancel_at_period_end()
        change = history.events()[-1]
        assert change["type"] == "customer.subscription.updated"

        # A state change, in order: the upsert, and the owner's summary (the owner with their
        # subscriptions read, the mirror's write).
        deliver(instance, change)
        with counting(instance.app) as counted:
            assert apply_recorded_events(instance.app, alone=True) == 1
        owner_lock = 1 if is_postgres() else 0
        assert len(counted.sql) <= BATCH_OVERHEAD + SAVEPOINT + owner_lock + 3, describe(counted)
        assert counted.commits == 1

        # Newer events with the same state (Stripe sends updates for fields we don't keep):
        # folded by the ordering rule into the newest, written by one upsert (it moves the
        # watermark), with one lock of the owner (PostgreSQL) and one read of the owner's live
        # subscriptions for the batch (a second live one is a duplicate the policy acts on:
        # docs/reliability.md), not one of each per event.
        newer = [
            {**change, "id": f"{change['id']}_newer{n}", "created": change["created"] + 1 + n}
            for n in range(20)
        ]
        for evt in newer:
            deliver(instance, evt)
        with counting(instance.app) as counted:
            assert apply_recorded_events(instance.app, alone=True) == len(newer)
        upserts = [s for s in counted.sql if "INSERT INTO subscriptions" in s]
        assert len(upserts) == 1
        live_check = 1
        owner_locks = 1 if is_postgres() else 0
        expected = BATCH_OVERHEAD + SAVEPOINT + 1 + owner_locks + live_check
        assert len(counted.sql) == expected, describe(counted)
        assert counted.commits == 1


def test_a_renewal_invoice_resets_usage_in_two_statements(app: Flask, billing: Billing) -> None:
    history = History.fresh(billing, "lean-renewal")
    history.start()
    before = len(history.events())
    history.renew()
    events = history.events()
    with receiver(app) as instance:
        for evt in events[:before]:
            deliver(instance, evt)
        apply_recorded_events(instance.app, alone=True)
        renewal = next(
            e
            for e in events[before:]
            if e["type"] == "invoice.paid"
            and e["data"]["object"]["billing_reason"] == "subscription_cycle"
        )
        deliver(instance, renewal)
        # The owner found and locked; the reset (no ledger row: nothing was used yet). And the
        # invoice kept for GET /api/invoices (one guarded upsert) with any payment action
        # about it cleared (one conditional UPDATE): nothing is read first.
        with counting(instance.app) as counted:
            assert apply_recorded_events(instance.app, alone=True) == 1
        reset = ("SELECT users.id", "UPDATE users SET generations_used")
        work = [s for s in counted.sql if s.startswith(reset)]
        assert len(work) == 2, describe(counted)
        kept = [s for s in counted.sql if s.startswith(INVOICE_KEPT)]
        assert len(kept) == 2, describe(counted)
        assert len(counted.sql) == BATCH_OVERHEAD + SAVEPOINT + 4, describe(counted)
        assert counted.commits == 1


def test_an_invoice_that_is_no_renewal_costs_only_keeping_it(app: Flask, billing: Billing) -> None:
    history = History.fresh(billing, "lean-invoice")
    history.start()
    events = history.events()
    with receiver(app) as instance:
        for evt in events:
            if evt["type"] != "invoice.paid":
                deliver(instance, evt)
        apply_recorded_events(instance.app, alone=True)
        paid = next(e for e in events if e["type"] == "invoice.paid")
        assert paid["data"]["object"]["billing_reason"] == "subscription_create"
        deliver(instance, paid)
        with counting(instance.app) as counted:
            assert apply_recorded_events(instance.app, alone=True) == 1
        # No usage reset; the invoice kept and its action cleared, in two statements.
        kept = [s for s in counted.sql if s.startswith(INVOICE_KEPT)]
        assert len(kept) == 2, describe(counted)
        assert len(counted.sql) == BATCH_OVERHEAD + SAVEPOINT + 2, describe(counted)


def test_a_first_event_for_a_user_we_never_saw(app: Flask, billing: Billing) -> None:
    """The costliest apply (a third of the bench's events): the subscription stored, the named
    user created and placed with it, linked to the customer (orphans adopted), the summary and
    the entitlements settled: 4 statements. The upsert; the user inserted already linked to the
    customer (INSERT ... ON CONFLICT DO NOTHING RETURNING); the subscription and the customer's
    orphans placed with them (one UPDATE ... RETURNING); the mirror and the entitlements in one
    UPDATE. The reads between (is the user there, does anyone hold the customer, their
    subscriptions, the entitlement lock) could only answer what we had just written. It was 13
    statements before (15 before that)."""
    run = f"first{len(billing.sandbox.deliveries)}"
    subscription = {
        "id": f"sub_{run}",
        "object": "subscription",
        "customer": f"cus_{run}",
        "status": "active",
        "cancel_at_period_end": False,
        "metadata": {"userId": f"user_{run}"},
        "current_period_start": 1_700_000_000,
        "current_period_end": 1_702_592_000,
        "items": {"object": "list", "data": []},
    }
    evt = {
        "id": f"evt_{run}",
        "object": "event",
        "type": "customer.subscription.updated",
        "created": 1_700_000_000,
        "data": {"object": subscription},
    }
    with receiver(app) as instance:
        assert deliver(instance, evt) == "recorded"
        with counting(instance.app) as counted:
            assert apply_recorded_events(instance.app, alone=True) == 1
        work = len(counted.sql) - BATCH_OVERHEAD - SAVEPOINT
        owner_lock = 1 if is_postgres() else 0  # user before subscription (docs/reliability.md)
        assert work == 4 + owner_lock, describe(counted)
        assert counted.commits == 1
        with instance.app.app_context():
            user = db.session.get(User, f"user_{run}")
            assert user is not None
            assert user.stripe_customer_id == f"cus_{run}"
            assert user.stripe_subscription_id == f"sub_{run}"
            assert user.subscription_status == "active"
            db.session.rollback()


def test_the_claim_walks_the_pending_index_in_order_past_thousands_of_applied_events(
    app: Flask, billing: Billing
) -> None:
    """The applier's claim reads the pending index in its order, without a sort, a bitmap or a
    table scan, however many applied events the table holds: on PostgreSQL a plain index scan is
    the one that marks applied events' entries dead for the next claim; the claim once read the
    whole table (`processed IS false` is not the index's predicate) and then, fixed, a bitmap of
    every entry left since the last vacuum (20-33 ms a claim after 80,000 events)."""
    plans: list[str] = []

    def explain_claim(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "ORDER BY webhook_events.stripe_created" in statement:  # the claim
            prefix = "EXPLAIN " if is_postgres() else "EXPLAIN QUERY PLAN "
            cursor.execute(prefix + statement, parameters)
            plans.append("\n".join(str(row) for row in cursor.fetchall()))

    applied = [
        {"id": f"evt_applied_{n:05}", "type": "invoice.paid", "processed": True,
         "stripe_created": 1_700_000_000 + n, "created_at": utcnow(), "attempts": 1}
        for n in range(5000)
    ]  # fmt: skip
    due = [{**row, "id": f"evt_due_{n}", "processed": False, "stripe_created": 1_800_000_000 + n}
           for n, row in enumerate(applied[:3])]  # fmt: skip
    with suite_applier_paused(app), app.app_context():
        db.session.execute(insert(WebhookEvent), applied + due)
        db.session.commit()
        event.listen(db.engine, "before_cursor_execute", explain_claim)
        try:
            claimed = claim_ready(200, utcnow())
        finally:
            event.remove(db.engine, "before_cursor_execute", explain_claim)
        db.session.rollback()
    assert [row.id for row in claimed] == ["evt_due_0", "evt_due_1", "evt_due_2"]
    assert len(plans) == 1, plans
    plan = plans[0]
    if is_postgres():
        assert "idx_webhook_events_pending" in plan, plan
        assert "Index Scan using idx_webhook_events_pending" in plan, plan
        assert "Bitmap" not in plan and "Sort" not in plan and "Seq Scan" not in plan, plan
    else:  # SQLite keeps no dead entries: an index of the unprocessed rows and a sort of them
        assert "SEARCH webhook_events USING INDEX" in plan, plan
