"""SQL statements per webhook event, counted on the engine, so the lean path can't regress.

An in-order subscription event is one INSERT that records (and claims) the event, one
conditional upsert that applies the ordering rule in SQL, and the commit. When the stored state
changes what the owner's summary shows, settling the summary costs a few more (justified: the
user row mirrors the subscription and caches the plan); a duplicate is two statements and the
commit; nothing pings the connection before use. SQLite's `BEGIN IMMEDIATE` is sent by our
engine hook and counted apart (psycopg sends PostgreSQL's BEGIN itself, never through a cursor).

Each event also writes its audit entry in its own transaction (issue 9). On PostgreSQL the
recording INSERT writes it in the same statement (a data-modifying CTE), so the counts stay;
SQLite has no such CTE (and no round trips to save): one more INSERT, after the others. A
duplicate's entry is one more INSERT on both.

On PostgreSQL a subscription event's record and upsert are one statement too (the upsert in a
CTE after the recording insert), so with BEGIN and COMMIT an in-order event costs three round
trips, and so does a redelivery (the same statement sees the event processed and writes the
duplicate's audit entry).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from conftest import Billing
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from stripe_history import History
from support import post_webhook

from app.extensions import db

# Statements (not counting BEGIN) and commits per event.
IN_ORDER_NO_CHANGE = 2
DUPLICATE = 3  # the insert, the claim, the audit entry
# Record + upsert, then the summary: the owner with their subscriptions, the mirror's write.
IN_ORDER_STATE_CHANGE = 4


def audit_insert(app: Flask) -> int:
    """The audit entry's own INSERT: 0 where the recording statement writes it (PostgreSQL)."""
    with app.app_context():
        return 0 if db.engine.dialect.name == "postgresql" else 1


def merged_upsert(app: Flask) -> int:
    """1 where the recording statement also upserts the subscription (PostgreSQL), else 0."""
    return audit_insert(app) ^ 1


def records_event(statement: str) -> bool:
    """The INSERT into webhook_events (on PostgreSQL inside the CTE that adds the audit entry)."""
    flat = " ".join(statement.split())
    return flat.startswith(
        ("INSERT INTO webhook_events", "WITH recorded AS (INSERT INTO webhook_events")
    )


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

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    try:
        yield counted
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)


def deliver(client: FlaskClient, billing: Billing, app: Flask, evt: dict[str, Any]) -> Counted:
    with counting(app) as counted:
        reply = post_webhook(client, evt, billing.webhook_secret)
    assert reply.status_code == 200, reply.get_json()
    return counted


def describe(counted: Counted) -> str:
    return "\n".join(s.split("\n")[0][:120] for s in counted.sql)


def test_statements_per_in_order_event(app: Flask, client: FlaskClient, billing: Billing) -> None:
    history = History.fresh(billing, "lean")
    history.start()
    for evt in history.events():
        deliver(client, billing, app, evt)
    history.advance(60)
    history.cancel_at_period_end()
    change = history.events()[-1]
    assert change["type"] == "customer.subscription.updated"

    # A state change, in order: record, upsert, and the owner's summary.
    counted = deliver(client, billing, app, change)
    expected = IN_ORDER_STATE_CHANGE + audit_insert(app) - merged_upsert(app)
    assert len(counted.sql) <= expected, describe(counted)
    assert counted.commits == 1
    assert not any(s.strip() == "SELECT 1" for s in counted.statements)

    # The same state again in a newer event (Stripe sends updates for fields we don't keep):
    # record and upsert (which moves the watermark), nothing else.
    newer = {**change, "id": change["id"] + "_newer", "created": change["created"] + 1}
    counted = deliver(client, billing, app, newer)
    expected = IN_ORDER_NO_CHANGE + audit_insert(app) - merged_upsert(app)
    assert len(counted.sql) <= expected, describe(counted)
    assert counted.commits == 1
    assert records_event(counted.sql[0])
    upsert = counted.sql[0] if merged_upsert(app) else counted.sql[1]
    assert "INSERT INTO subscriptions" in upsert

    # A redelivery: the insert finds the event, the claim finds it processed (on PostgreSQL
    # the recording statement sees it processed and writes the duplicate's entry itself).
    counted = deliver(client, billing, app, newer)
    assert len(counted.sql) <= (1 if merged_upsert(app) else DUPLICATE), describe(counted)
    assert counted.commits == 1


def test_an_invoice_that_is_no_renewal_is_only_recorded(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    history = History.fresh(billing, "lean-invoice")
    history.start()
    events = history.events()
    for evt in events:
        if evt["type"] != "invoice.paid":
            deliver(client, billing, app, evt)
    paid = next(e for e in events if e["type"] == "invoice.paid")
    assert paid["data"]["object"]["billing_reason"] == "subscription_create"
    counted = deliver(client, billing, app, paid)
    assert len(counted.sql) == 1 + audit_insert(app), describe(counted)
    assert counted.commits == 1


def test_a_renewal_invoice_resets_usage_in_three_statements_and_the_ledger_row(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    history = History.fresh(billing, "lean-renewal")
    history.start()
    before = len(history.events())
    history.renew()
    events = history.events()
    for evt in events[:before]:
        deliver(client, billing, app, evt)
    renewal = next(
        e
        for e in events[before:]
        if e["type"] == "invoice.paid"
        and e["data"]["object"]["billing_reason"] == "subscription_cycle"
    )
    # Record; the owner found and locked; the reset (no ledger row: nothing was used yet).
    counted = deliver(client, billing, app, renewal)
    assert len(counted.sql) == 3 + audit_insert(app), describe(counted)
    assert counted.sql[1].startswith("SELECT users.id")
    assert counted.sql[2].startswith("UPDATE users")
    assert counted.commits == 1
