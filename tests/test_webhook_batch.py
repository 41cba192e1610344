"""The set-based apply of a batch's subscription events (app/billing/subscriptions/batch_store.py):
the same rows as applying the events one by one, new users created and settled, a failing
event isolated, and a constant number of statements however many events the batch holds."""

from __future__ import annotations

import json
import random
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import select
from support import captured_logs, is_postgres, suite_applier_paused, wait_until
from test_webhook_statements import counting, describe

from app.billing.webhooks.applier import Settings, drain
from app.billing.webhooks.store import Recorded, event_state, record_events
from app.extensions import db
from app.models import Subscription, User

STEPS = (  # one subscription's life: each step is one event's object, a second apart
    {"status": "incomplete"},
    {"status": "active"},
    {"status": "active", "cancel_at_period_end": True},
    {"status": "active", "cancel_at_period_end": False, "quantity": 2},
    {"status": "past_due"},
    {"status": "active"},
    {"status": "canceled", "canceled_at": 1_700_000_900},
)


def _event(run: str, user: int, step: int, created: int, **extra: Any) -> Recorded:
    changes = dict(STEPS[step])
    quantity = changes.pop("quantity", 1)
    subscription = {
        "id": f"sub_{run}_{user}",
        "object": "subscription",
        "customer": f"cus_{run}_{user}",
        "cancel_at_period_end": False,
        "metadata": {"userId": f"user_{run}_{user}"},
        "created": 1_700_000_000,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{run}_{user}",
                    "quantity": quantity,
                    "current_period_start": 1_700_000_000,
                    "current_period_end": 1_702_592_000,
                    "price": {"id": "price_monthly", "recurring": {"interval": "month"}},
                }
            ],
        },
        **changes,
        **extra,
    }
    evt = {
        "id": f"evt_{run}_{user}_{step}",
        "object": "event",
        "type": "customer.subscription.updated",
        "created": created,
        "data": {"object": subscription},
    }
    return Recorded(evt["id"], evt["type"], json.dumps(evt), None, created, datetime.now(UTC))


def _history(run: str, users: int, steps: int) -> list[Recorded]:
    events = [
        _event(run, user, step, 1_700_000_000 + step * 10 + user)
        for user in range(users)
        for step in range(steps)
    ]
    random.Random(run).shuffle(events)  # arrival order: any
    return events


def _record_and_drain(app: Flask, events: list[Recorded], batch: int) -> None:
    with app.app_context():
        record_events(events)
        db.session.commit()
        drain(app.extensions["stripe_gateway"], Settings(batch=batch))
        db.session.remove()


SUBSCRIPTION_COLUMNS = (
    "status",
    "cancel_at_period_end",
    "quantity",
    "canceled_at",
    "last_event_created",
    "price_id",
    "current_period_end",
)
USER_COLUMNS = (
    "stripe_customer_id",
    "stripe_subscription_id",
    "subscription_status",
    "subscription_tier",
    "generations_limit",
    "cancel_at_period_end",
    "quantity",
    # not usage_period_end: a free period runs from sign-up (each run creates its users anew)
)


def _rows(app: Flask, run: str, users: int) -> list[tuple[Any, ...]]:
    with app.app_context():
        found = []
        for user in range(users):
            subscription = db.session.get(Subscription, f"sub_{run}_{user}")
            owner = db.session.get(User, f"user_{run}_{user}")
            assert subscription is not None and owner is not None
            found.append(
                (
                    subscription.user_id == owner.id,
                    *(getattr(subscription, c) for c in SUBSCRIPTION_COLUMNS),
                    *(getattr(owner, c) for c in USER_COLUMNS if not c.startswith("stripe_")),
                    (owner.stripe_customer_id or "").split("_")[-1],
                    (owner.stripe_subscription_id or "").split("_")[-1],
                )
            )
        db.session.remove()
        return found


def test_a_shuffled_batch_leaves_the_rows_one_by_one_would(app: Flask) -> None:
    users = 6
    with suite_applier_paused(app):
        for steps in (2, 4, len(STEPS)):
            together, alone = f"b{uuid.uuid4().hex[:8]}", f"a{uuid.uuid4().hex[:8]}"
            _record_and_drain(app, _history(together, users, steps), batch=200)
            _record_and_drain(app, _history(alone, users, steps), batch=1)
            assert _rows(app, together, users) == _rows(app, alone, users)
            assert _rows(app, together, users)[0][1] == STEPS[steps - 1]["status"]


def test_a_failing_event_lets_the_rest_of_its_batch_apply(app: Flask) -> None:
    run = f"f{uuid.uuid4().hex[:8]}"
    events = [_event(run, user, 1, 1_700_000_000 + user) for user in range(5)]
    events.append(_event(run, 9, 1, 1_700_000_003, metadata=["not", "a", "dict"]))
    with suite_applier_paused(app):
        _record_and_drain(app, events, batch=200)
        with app.app_context():
            applied = db.session.execute(
                select(User.id).where(User.id.like(f"user_{run}_%"))
            ).scalars()
            assert sorted(applied) == [f"user_{run}_{user}" for user in range(5)]
            state = event_state(f"evt_{run}_9_1")
            assert state is not None and not state.processed and "AttributeError" in state.error
            db.session.remove()


def test_a_batch_costs_the_same_statements_for_any_number_of_events(app: Flask) -> None:
    """First events for new users, then newer events for them: a constant number of
    statements per batch (the claim, the savepoint, the owners' lock on PostgreSQL, the upsert,
    the new users' subscriptions read, their INSERT and placing UPDATE or one live check, the
    mark, the audit entries), not one or more per event."""
    counts = []
    with suite_applier_paused(app):
        for users in (3, 30):
            run = f"s{uuid.uuid4().hex[:8]}"
            with counting(app) as first:
                _record_and_drain(
                    app, [_event(run, u, 1, 1_700_000_000) for u in range(users)], 200
                )
            newer = [_event(run, u, 1, 1_700_000_100 + n) for n in range(3) for u in range(users)]
            newer = [  # distinct event ids for the newer ones
                Recorded(f"{e.id}_{n}", e.type, e.data, None, e.stripe_created, e.received_at)
                for n, e in enumerate(newer)
            ]
            with counting(app) as then:
                _record_and_drain(app, newer, 200)
            counts.append((len(first.sql), len(then.sql)))
            assert len(first.sql) <= 13 + (1 if is_postgres() else 0), describe(first)
    assert counts[0] == counts[1], counts


def test_late_events_cost_the_same_statements_for_any_number_of_events(app: Flask) -> None:
    """Events older than what the rows hold (Stripe's delivery order is none): skipped, in a
    constant number of statements per batch. Each was a locked read of its own (two statements)
    before, and a stream of late events held the applier's batches for seconds."""
    counts = []
    with suite_applier_paused(app):
        for users in (3, 30):
            run = f"l{uuid.uuid4().hex[:8]}"
            _record_and_drain(app, [_event(run, u, 1, 1_700_000_100) for u in range(users)], 200)
            held = _rows(app, run, users)
            late = [
                Recorded(f"{e.id}_late", e.type, e.data, None, e.stripe_created, e.received_at)
                for e in (
                    _event(run, u, step, 1_700_000_000 + step * 10 + u)
                    for u in range(users)
                    for step in (2, 4)
                )
            ]
            with counting(app) as counted:
                _record_and_drain(app, late, 200)
            counts.append(len(counted.sql))
            assert _rows(app, run, users) == held  # none of them changed anything
            with app.app_context():
                assert all(event_state(e.id).processed for e in late)  # type: ignore[union-attr]
                db.session.remove()
    assert counts[0] == counts[1], counts


def test_a_batch_is_marked_and_audited_in_one_statement_per_event_kind(app: Flask) -> None:
    """The end of a batch: each event marked processed (attempts 1) and audited once, as
    `webhook.applied` or `webhook.ignored` with its type; on PostgreSQL the mark and the audit
    entries are one statement (applier_store.finish_batch), whatever the batch's size."""
    from app.models import AuditEntry, WebhookEvent

    run = f"f{uuid.uuid4().hex[:8]}"
    ignored = Recorded(
        f"evt_{run}_ignored",
        "customer.created",
        json.dumps(
            {"id": f"evt_{run}_ignored", "type": "customer.created", "data": {"object": {}}}
        ),
        None,
        1_700_000_000,
        datetime.now(UTC),
    )
    events = [_event(run, u, 1, 1_700_000_001 + u) for u in range(3)] + [ignored]
    with suite_applier_paused(app), counting(app) as counted:
        _record_and_drain(app, events, 200)
    with app.app_context():
        rows = db.session.execute(
            select(WebhookEvent.id, WebhookEvent.processed, WebhookEvent.attempts).where(
                WebhookEvent.id.like(f"evt_{run}_%")
            )
        ).all()
        assert sorted(rows) == sorted((e.id, True, 1) for e in events)
        audited = db.session.execute(
            select(AuditEntry.stripe_object, AuditEntry.action, AuditEntry.detail).where(
                AuditEntry.stripe_object.like(f"evt_{run}_%")
            )
        ).all()
    expected = [(e.id, "webhook.applied", e.type) for e in events[:3]]
    assert sorted(audited) == sorted([*expected, (ignored.id, "webhook.ignored", ignored.type)])
    marks = [s for s in counted.sql if s.lstrip().upper().startswith(("UPDATE WEBHOOK", "WITH"))]
    audits = [s for s in counted.sql if "INSERT INTO audit_log" in s]
    if is_postgres():  # fused: one statement does both
        assert len(marks) == 1 and audits == marks, describe(counted)
    else:
        assert (len(marks), len(audits)) == (1, 1), describe(counted)


def test_an_applier_with_several_loops_applies_a_backlog_once_with_all_of_them(
    app: Flask,
) -> None:
    """WEBHOOK_APPLY_THREADS (the applier process's loops): each loop claims batches of its
    own, rows another holds skipped. A shuffled backlog of whole histories ends as one loop
    leaves it, every event marked once (attempts 1), and on PostgreSQL more than one loop took
    batches (SQLite has one writer at a time: whichever loop holds it takes the batch)."""
    from app.billing.webhooks.applier import Applier
    from app.models import WebhookEvent

    users = 12
    together, alone = f"t{uuid.uuid4().hex[:8]}", f"a{uuid.uuid4().hex[:8]}"
    with suite_applier_paused(app):
        _record_and_drain(app, _history(alone, users, len(STEPS)), batch=200)
        with app.app_context():
            record_events(_history(together, users, len(STEPS)))
            db.session.commit()
            db.session.remove()
        app.config["WEBHOOK_APPLY_BATCH"], batch = 3, app.config["WEBHOOK_APPLY_BATCH"]
        applier = Applier(app, poll_seconds=0.01)
        try:
            with captured_logs("app.billing.webhooks.applier") as records:
                serving = threading.Thread(target=applier.serve, args=(3,))
                serving.start()

                def left() -> int:
                    with app.app_context():
                        pending = db.session.execute(
                            select(WebhookEvent.id).where(
                                WebhookEvent.id.like(f"evt_{together}_%"),
                                WebhookEvent.processed.is_(False),
                            )
                        ).all()
                        db.session.remove()
                    return len(pending)

                wait_until(lambda: left() == 0)
                applier.stop()
                serving.join(10)
        finally:
            app.config["WEBHOOK_APPLY_BATCH"] = batch
        assert not serving.is_alive(), "serve() returned once every loop stopped"
        with app.app_context():
            attempts = db.session.execute(
                select(WebhookEvent.attempts).where(WebhookEvent.id.like(f"evt_{together}_%"))
            ).scalars()
            assert sorted(set(attempts)) == [1]
            db.session.remove()
    assert _rows(app, together, users) == _rows(app, alone, users)
    loops = {r.threadName for r in records if r.getMessage() == "webhook batch"}
    assert len(loops) > (1 if is_postgres() else 0), loops
