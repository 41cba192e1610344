"""Issue 19: the apply lag is visible. `/readyz` says how many webhook events wait for the
applier and how long the oldest has waited (detail only: still 200), and the applier keeps two
gauges for Prometheus; its idle polls ask the database a one-row question instead of a full
pass."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import delete, insert

from app.billing.webhooks.applier import Applier
from app.billing.webhooks.backlog import DueProbe, backlog
from app.extensions import db
from app.models import WebhookEvent, utcnow
from app.observability import metrics

events = WebhookEvent.__table__


def record(app: Flask, event_id: str, seconds_ago: float, **values: object) -> None:
    with app.app_context():
        db.session.execute(
            insert(events).values(
                id=event_id,
                type="customer.created",
                data={"id": event_id, "type": "customer.created", "data": {"object": {}}},
                stripe_created=1,
                created_at=utcnow() - timedelta(seconds=seconds_ago),
                **values,
            )
        )
        db.session.commit()


def forget(app: Flask, prefix: str) -> None:
    with app.app_context():
        db.session.execute(delete(events).where(events.c.id.like(f"{prefix}%")))
        db.session.commit()


def test_readyz_says_how_long_the_oldest_pending_event_has_waited(app: Flask) -> None:
    applier = app.extensions["webhook_applier"]
    applier.stop()  # nothing applies while we look
    client = app.test_client()
    try:
        record(app, "evt_lag_old", 90)
        record(app, "evt_lag_new", 5)
        record(app, "evt_lag_parked", 500, parked_at=utcnow())  # an operator's, not the lag
        record(app, "evt_lag_done", 900, processed=True, processed_at=utcnow())
        reply = client.get("/readyz")
        assert reply.status_code == 200, "a backlog is detail: the instance stays in"
        webhooks = reply.get_json()["webhooks"]
        assert webhooks["pending"] == 2
        assert 89 <= webhooks["oldestPendingSeconds"] < 150
    finally:
        forget(app, "evt_lag_")
        applier.start()
    assert client.get("/readyz").get_json()["webhooks"] == {
        "pending": 0,
        "oldestPendingSeconds": 0.0,
    }


def test_the_applier_keeps_the_backlog_gauges(app: Flask) -> None:
    applier = app.extensions["webhook_applier"]
    applier.stop()
    try:
        record(app, "evt_gauge_1", 30)
        Applier(app, 0.05)._observe_backlog()
        assert metrics.WEBHOOK_BACKLOG._value.get() == 1
        assert 29 <= metrics.WEBHOOK_OLDEST_PENDING._value.get() < 90
        body, _ = metrics.render()
        assert b"billing_webhook_oldest_pending_seconds" in body
    finally:
        forget(app, "evt_gauge_")
        applier.start()


def test_the_idle_probe_sees_due_events_only(app: Flask, tmp_path: Path) -> None:
    applier = app.extensions["webhook_applier"]
    applier.stop()
    with app.app_context():
        probe = DueProbe(db.engine)
    try:
        assert not probe.anything_due()
        later = utcnow() + timedelta(minutes=5)
        record(app, "evt_probe_retry", 10, next_attempt_at=later)  # backing off: not due yet
        assert not probe.anything_due()
        assert probe.anything_due(later + timedelta(seconds=1))
        record(app, "evt_probe_new", 1)
        assert probe.anything_due()
        with app.app_context(), db.engine.connect() as connection:
            assert backlog(connection).pending == 2  # both wait: the lag counts the retry too
    finally:
        probe.close()
        forget(app, "evt_probe_")
        applier.start()
